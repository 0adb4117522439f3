"""`sampling serve` with two workers archives by itself, and when the leading worker is
SIGKILLed another takes the lease within two lease periods and archives on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from sampling.api.services import Services
from sampling.auth.models import DeviceIn
from sampling.binding import keys as bkeys
from sampling.live import keys
from sampling.store.embedded import free_port
from tests.faults.conftest import ROUND, fault_settings, person, setup_round, tube_code
from tests.workers import serve_workers, stop_workers, worker_pids

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.store.embedded import EmbeddedServer

LEASE = 1.5
EVERY = 0.5


def _batch(first_seq: int, n: int) -> dict[str, Any]:
    tube = tube_code(0, n)
    ops: list[dict[str, Any]] = [
        {"op": f"o{first_seq}", "seq": first_seq, "kind": "open", "tube": tube, "capacity": 10}
    ]
    for k in range(5):
        seq = first_seq + 1 + k
        ops.append(
            {
                "op": f"s{seq}",
                "seq": seq,
                "kind": "scan",
                "tube": tube,
                "resident": person(0, n * 10 + k),
            }
        )
    return {"ops": ops}


def _wait(what: str, check: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.mark.slow
def test_serve_archives_and_a_new_leader_takes_over(
    own_server: EmbeddedServer, short_dir: Path
) -> None:
    async def prepare() -> tuple[str, str]:
        svc = Services.build(fault_settings(own_server.url, short_dir))
        await setup_round(svc, 0)
        from sampling.binding.models import SiteIn

        await svc.sites.create(SiteIn(id="S0", name="p", street="s", community="c", grid="G"))
        scanner = await svc.devices.create(DeviceIn(id="d0", role="scanner", site="S0"))
        viewer = await svc.devices.create(DeviceIn(id="v0", role="viewer"))
        await svc.close()
        return scanner.token, viewer.token

    scanner, viewer = asyncio.run(prepare())
    r = redis.Redis.from_url(own_server.url)
    out = short_dir / "archive" / ROUND
    port = free_port()
    proc = serve_workers(
        own_server,
        short_dir,
        port,
        SAMPLING_ARCHIVE_EVERY=str(EVERY),
        SAMPLING_ARCHIVE_LEASE=str(LEASE),
        SAMPLING_ARCHIVER="",  # serve turns it on
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        resp = http.post(
            f"/v1/rounds/{ROUND}/batches",
            json=_batch(1, 0),
            headers={"Authorization": f"Bearer {scanner}"},
        )
        assert resp.status_code == 200, resp.text
        # Archived with no `sampling archive`: parts on disk, the journal trimmed.
        _wait(
            "first archive",
            lambda: (
                list((out / "journal").glob("part-*.parquet")) and r.xlen(bkeys.journal(ROUND)) == 0
            ),
            10 * EVERY + 2 * LEASE,
        )

        # The pass stamps its data time once its tables are derived, a moment after
        # the journal is trimmed: the live document shows it from then on.
        def stamped() -> bool:
            live = http.get(
                f"/v1/rounds/{ROUND}/live", headers={"Authorization": f"Bearer {viewer}"}
            )
            assert live.status_code == 200, live.text
            return live.json()["archived_at"] is not None

        _wait("the archive's data time on /live", stamped, 10 * EVERY + 2 * LEASE)

        holder = r.get(keys.LEASE)
        assert holder is not None
        leader = int(holder.decode().split(":")[1])
        assert leader in worker_pids(proc)
        os.kill(leader, signal.SIGKILL)

        def new_leader() -> bool:
            now = r.get(keys.LEASE)
            return now is not None and int(now.decode().split(":")[1]) != leader

        took = _wait("takeover", new_leader, 3 * LEASE)
        print(f"\n[archiver] leader {leader} killed; a new leader within {took:.2f} s")
        assert took <= 2 * LEASE
        killed_at = time.time()

        # The new leader archives what comes after.
        resp = http.post(
            f"/v1/rounds/{ROUND}/batches",
            json=_batch(7, 1),
            headers={"Authorization": f"Bearer {scanner}"},
        )
        assert resp.status_code == 200, resp.text

        def archived_after_kill() -> bool:
            try:
                stamp = json.loads((out / "archived.json").read_text())["as_of"]
            except (FileNotFoundError, ValueError):
                return False
            return stamp > killed_at and r.xlen(bkeys.journal(ROUND)) == 0

        _wait("archive after takeover", archived_after_kill, 10 * EVERY + 2 * LEASE)
    finally:
        http.close()
        stop_workers(proc)
    # Every scan is in the archive once: two tubes of five.
    import polars as pl

    from sampling.archive import journal

    # Parts differ in columns (the round's creation has its own), so read them as the
    # archive does rather than as one glob.
    parts = journal(short_dir, ROUND).collect()
    assert parts.filter(pl.col("kind") == "scan").height == 10
    assert parts["id"].n_unique() == parts.height
    r.close()
