"""An API worker killed (SIGKILL) in the middle of batch uploads: each command is one
atomic step, so a retry of the same batch (same op ids and sequence numbers) is applied
exactly once: counters, tube records and journal agree with the client's ledger."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from sampling.api.services import Services
from sampling.binding import keys
from sampling.binding.tube import TubeRecord
from sampling.store.embedded import EmbeddedServer, free_port
from tests.faults.conftest import ROUND, fault_settings, person, setup_round, tube_code
from tests.workers import serve_workers, stop_workers, worker_pids

DEVICES = 4
BATCHES = 8  # per device
TUBES_PER_BATCH = 5  # each: an open and 9 scans


def _batch(device: int, b: int) -> dict[str, Any]:
    ops: list[dict[str, Any]] = []
    seq = b * TUBES_PER_BATCH * 10
    for t in range(TUBES_PER_BATCH):
        n = b * TUBES_PER_BATCH + t
        tube = tube_code(device, n)
        seq += 1
        ops.append({"op": f"o{seq}", "seq": seq, "kind": "open", "tube": tube, "capacity": 10})
        for k in range(9):
            seq += 1
            ops.append(
                {
                    "op": f"s{seq}",
                    "seq": seq,
                    "kind": "scan",
                    "tube": tube,
                    "resident": person(device, n * 10 + k),
                }
            )
    return {"ops": ops}


async def _upload(
    port: int, token: str, device: int, done: list[int], failures: Counter[str]
) -> list[dict[str, Any]]:
    answers = []
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection, any worker
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=10
    ) as http:
        for b in range(BATCHES):
            body = _batch(device, b)
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, "no answer after retries"
                try:
                    resp = await http.post(
                        f"/v1/rounds/{ROUND}/batches",
                        json=body,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.TransportError as exc:
                    failures[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue  # the same batch again: same op ids, same sequence numbers
                if resp.status_code == 503:
                    failures["503"] += 1
                    await asyncio.sleep(0.05)
                    continue
                assert resp.status_code == 200, resp.text
                answers.append(resp.json())
                done[0] += 1
                break
    return answers


async def _kill_one(proc: subprocess.Popen[bytes], done: list[int], killed: list[int]) -> None:
    while done[0] < DEVICES:  # each device has had a batch through
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    victim = worker_pids(proc)[0]
    os.kill(victim, signal.SIGKILL)
    killed.append(victim)


@pytest.mark.slow
def test_worker_killed_mid_upload(own_server: EmbeddedServer, short_dir: Path) -> None:
    async def prepare() -> list[str]:
        svc = Services.build(fault_settings(own_server.url, short_dir))
        await setup_round(svc, 0)
        from sampling.auth.models import DeviceIn
        from sampling.binding.models import SiteIn

        tokens = []
        for i in range(DEVICES):
            await svc.sites.create(
                SiteIn(id=f"S{i}", name="p", street="s", community="c", grid="G")
            )
            made = await svc.devices.create(DeviceIn(id=f"d{i}", role="scanner", site=f"S{i}"))
            tokens.append(made.token)
        await svc.close()
        return tokens

    tokens = asyncio.run(prepare())
    port = free_port()
    # This test reads the journal in Redis afterwards: no archiver trims it.
    proc = serve_workers(
        own_server, short_dir, port, SAMPLING_DEVICE_RATE="100000", SAMPLING_ARCHIVER="0"
    )
    failures: Counter[str] = Counter()
    killed: list[int] = []
    try:

        async def run() -> list[list[dict[str, Any]]]:
            done = [0]
            *answers, _ = await asyncio.gather(
                *(_upload(port, t, i, done, failures) for i, t in enumerate(tokens)),
                _kill_one(proc, done, killed),
            )
            return answers

        answers = asyncio.run(asyncio.wait_for(run(), 120))
    finally:
        stop_workers(proc)
    assert killed
    print(f"\n[worker crash] killed pid {killed[0]}; client saw {dict(failures)}")
    # Every operation succeeded once; a retried batch answers from the op record.
    for per_device in answers:
        assert len(per_device) == BATCHES
        for result in per_device:
            assert result["refused"] == 0, result
            assert result["gaps"] == []
    r = redis.Redis.from_url(own_server.url)
    counters = {k.decode(): int(v) for k, v in r.hgetall(keys.count(ROUND)).items()}
    tubes = DEVICES * BATCHES * TUBES_PER_BATCH
    assert counters["tubes_opened"] == tubes
    assert counters["bound"] == tubes * 9
    kinds = Counter(f[b"k"] for _, f in r.xrange(keys.journal(ROUND)))
    # The round's creation is journaled in its own stream too (issue 11.7).
    assert kinds == {b"round_create": 1, b"open": tubes, b"scan": tubes * 9}
    for d in range(DEVICES):
        for n in range(BATCHES * TUBES_PER_BATCH):
            raw = r.get(keys.tube(ROUND, tube_code(d, n)))
            assert raw is not None and len(TubeRecord(raw).members) == 9
    r.close()
