"""Durable acknowledgements (DESIGN invariant 6): SIGKILL Redis mid-stream, restart on the
same data directory, and look for every scan the client was told was saved."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from sampling.api.services import Services
from sampling.auth.models import Device
from sampling.settings import Durability
from sampling.store.embedded import EmbeddedServer, free_port
from sampling.store.runtime import embedded_for
from tests.faults.conftest import Ledger, fault_settings, missing, person, setup_round, tube_code

DEVICES = 8
KILL_AFTER = 200  # acknowledged scans before the SIGKILL


async def _stream(
    svc: Services, device: Device, n: int, ledger: Ledger, stop: asyncio.Event
) -> None:
    seq = 0
    for t in range(10_000):
        tube = tube_code(n, t)
        seq += 1
        try:
            await svc.binder.open(device, "f1", tube, seq, f"o{seq}", 10, "pool")
            ledger.opened.add(tube)
            for k in range(10):
                seq += 1
                code = person(n, t * 10 + k)
                await svc.binder.scan(device, "f1", tube, seq, f"s{seq}", code)
                ledger.acked[code] = tube
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            ledger.errors += 1
            return
        if stop.is_set():
            return


async def _killer(server: EmbeddedServer, ledger: Ledger, stop: asyncio.Event) -> None:
    while len(ledger.acked) < KILL_AFTER:
        await asyncio.sleep(0.001)
    server.kill()  # SIGKILL, with scans of every device in flight
    stop.set()


async def _run(server: EmbeddedServer, durability: Durability, data_dir: Path) -> Ledger:
    svc = Services.build(fault_settings(server.url, data_dir, durability=durability))
    ledger = Ledger()
    stop = asyncio.Event()
    try:
        devices = await setup_round(svc, DEVICES)
        await asyncio.wait_for(
            asyncio.gather(
                _killer(server, ledger, stop),
                *(_stream(svc, d, i, ledger, stop) for i, d in enumerate(devices)),
            ),
            timeout=60,
        )
    finally:
        await svc.close()
    return ledger


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["always", "waitaof", "everysec"])
def test_acknowledged_scans_survive_sigkill(
    durability: Durability, short_dir: Path, record_property: pytest.RecordProperty
) -> None:
    settings = fault_settings("", short_dir, durability=durability)
    server = embedded_for(settings, port=free_port())  # appendfsync as `sampling serve` runs it
    assert server.appendfsync == ("always" if durability == "always" else "everysec")
    server.start()
    try:
        ledger = asyncio.run(_run(server, durability, short_dir))
    finally:
        server.kill()
    assert len(ledger.acked) >= KILL_AFTER
    assert ledger.errors >= 1  # the kill did land in the middle of the stream
    again = embedded_for(settings, port=free_port()).start()  # same data dir: replays the AOF
    try:
        r = redis.Redis.from_url(again.url)
        lost = missing(r, ledger)
        counters = {k.decode(): int(v) for k, v in r.hgetall("{rd:f1}:count").items()}
        r.close()
    finally:
        again.stop()
    record_property("acked", len(ledger.acked))
    record_property("lost", len(lost))
    print(f"\n[durability={durability}] acked={len(ledger.acked)} lost={len(lost)}")
    # Never more kept than acknowledged-or-in-flight, and (always / waitaof) nothing lost.
    assert counters["bound"] >= len(ledger.acked) - len(lost)
    assert counters["bound"] <= len(ledger.acked) + DEVICES
    if durability in ("always", "waitaof"):
        assert lost == []
