"""The load test end to end: a small round through ``python -m loadtest``, verified clean,
with a short network outage at a third of the sampling points (their handhelds queue and
upload through the offline batch API when it ends).

20,000 residents by default; ``SAMPLING_LOADTEST_RESIDENTS`` lowers it on a slow
machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import Cluster

RESIDENTS = int(os.environ.get("SAMPLING_LOADTEST_RESIDENTS", "20000"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_round_loses_nothing(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "--residents",
            str(RESIDENTS),
            "--out",
            str(tmp_path / "run"),
            "--workers",
            "2",
            "--api-workers",
            "2",
            "--outage",
            "15",
        ],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert run.stdout.strip(), run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, (summary, run.stderr[-3000:])
    assert summary["end"] == "done"
    assert summary["lost"] == 0
    assert summary["doubled"] == 0
    assert summary["unacknowledged"] == 0
    assert summary["tube_mismatch"] == 0
    assert summary["journal_missing"] == summary["journal_extra"] == 0
    assert summary["replay_mismatch"] == 0
    assert summary["unscanned"] == 0
    assert summary["bound"] == summary["planned"]
    assert summary["errors"] == 0
    assert summary["requests"] > summary["planned"] / 2
    # The outage: ops were queued and uploaded, and the drain was measured.
    assert summary["outage_ops"] > 0
    assert summary["outage_batches"] > 0
    assert summary["drain_seconds"] is not None
    # Registered in bulk calls: seconds, where one call a device took minutes.
    assert 0 < summary["setup_seconds"] < 60
    for report in ("locust_stats.csv", "locust.html", "verify.json"):
        assert (tmp_path / "run" / report).exists(), report


@pytest.mark.cluster
def test_an_external_run_on_a_cluster_reads_every_primary(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sampling loadtest --host ... --redis-url` on a cluster: the verifier's client is a
    cluster's when SAMPLING_REDIS_CLUSTER says so, and the memory figure is every
    primary's, not the one node the URL names."""
    import asyncio

    import redis

    from loadtest.cli import _cluster_setting, _redis_bytes

    monkeypatch.setenv("SAMPLING_REDIS_CLUSTER", "1")
    assert _cluster_setting() is True
    monkeypatch.setenv("SAMPLING_REDIS_CLUSTER", "0")
    assert _cluster_setting() is False
    each = []
    for node in cluster.nodes:
        with redis.Redis(port=node.port) as r:
            each.append(int(r.info("memory")["used_memory"]))
    total = asyncio.run(_redis_bytes(cluster.url, cluster=True))
    # Read a moment apart, the nodes' figures move a little; one node's is a third.
    assert 0.9 * sum(each) < total < 1.1 * sum(each)
    assert total > 2 * max(each)
