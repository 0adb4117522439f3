"""`sampling bench binding` at a small size: throughput and what a scan costs in CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

COST = (
    "api_cpu_us_per_scan",
    "valkey_cpu_us_per_scan",
    "api_cpu_us_per_batched_scan",
    "valkey_cpu_us_per_batched_scan",
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_binding_prints_the_cost_of_a_scan() -> None:
    # 32 connections, the default: the batch phase then has more batches in flight
    # than the server's batch room admits, and must resend on 503 rather than fail.
    run = subprocess.run(
        [sys.executable, "-m", "sampling.cli", "bench", "binding", "--seconds", "2",
         "--connections", "32", "--bindings", "2000", "--json"],
        capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    # The figures it had are kept.
    for key in ("single_scans_per_s", "ceiling_requests_per_s", "batch_scans_per_s", "p99_ms"):
        assert out[key] > 0, key
    for key in COST:
        assert isinstance(out[key], float) and out[key] > 0, (key, out)
    # A batched scan shares its request with 99 others: it costs the API less.
    assert out["api_cpu_us_per_batched_scan"] < out["api_cpu_us_per_scan"]
    # Where Valkey's share goes, from its own INFO commandstats: every single scan
    # runs the apply script once; a batch of 100 runs it once for all of them.
    single, batched = out["valkey_commands_per_scan"], out["valkey_commands_per_batched_scan"]
    assert single["evalsha"]["calls"] >= 1, single
    assert batched["evalsha"]["calls"] < 0.5, batched
    assert single["xadd"]["calls"] >= 1, single
