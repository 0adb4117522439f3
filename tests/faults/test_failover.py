"""Cluster failover: 3 masters + 3 replicas; scans stream through a Binder on a cluster
client; the primary holding the round's slot is SIGKILLed; the service answers again
after the replica takes over, and we measure the loss window (acknowledged scans that
the promoted replica never received: replication is asynchronous)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from sampling.api.services import Services
from sampling.auth.models import Device
from sampling.binding import keys
from sampling.store.embedded import EmbeddedServer, cli_binary, free_port
from tests.faults.conftest import (
    ROUND,
    Ledger,
    fault_settings,
    missing,
    person,
    setup_round,
    tube_code,
)

DEVICES = 4
KILL_AFTER = 200
DEADLINE = 30.0  # seconds a scan may be retried across the failover


class ReplicatedCluster:
    def __init__(self, root: Path) -> None:
        self.nodes = [
            EmbeddedServer(
                root / f"n{i}",
                port=free_port(),
                extra={
                    "cluster-enabled": "yes",
                    "cluster-config-file": "nodes.conf",
                    "cluster-port": str(free_port()),
                    "cluster-node-timeout": "1000",
                    "cluster-replica-validity-factor": "0",
                },
            )
            for i in range(6)
        ]

    def start(self) -> ReplicatedCluster:
        for n in self.nodes:
            n.start()
        subprocess.run(
            [
                str(cli_binary()),
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 60
        while not all(self._ready(n) for n in self.nodes):
            assert time.monotonic() < deadline, "cluster not ready"
            time.sleep(0.2)
        return self

    @staticmethod
    def _ready(n: EmbeddedServer) -> bool:
        with redis.Redis(port=n.port) as r:
            if b"cluster_state:ok" not in r.execute_command("CLUSTER", "INFO"):
                return False
            role = r.execute_command("ROLE")[0]
            return role != b"slave" or r.info("replication").get("master_link_status") == "up"

    def owner(self, key: str) -> EmbeddedServer:
        alive = next(n for n in self.nodes if n.process and n.process.poll() is None)
        with redis.Redis(port=alive.port) as r:
            slot = r.execute_command("CLUSTER", "KEYSLOT", key)
            for start, end, primary, *_ in r.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == primary[1])
        raise AssertionError("no owner")

    def stop(self) -> None:
        for n in self.nodes:
            n.kill()


async def _stream(
    svc: Services, device: Device, d: int, ledger: Ledger, stop: asyncio.Event, outage: list[float]
) -> None:
    seq = 0
    for t in range(10_000):
        tube = tube_code(d, t)
        for k in range(-1, 10):
            seq += 1
            began = time.monotonic()
            while True:  # the same op and seq until it is answered
                try:
                    if k < 0:
                        await svc.binder.open(device, ROUND, tube, seq, f"o{seq}", 10, "pool")
                    else:
                        code = person(d, t * 10 + k)
                        await svc.binder.scan(device, ROUND, tube, seq, f"s{seq}", code)
                        ledger.acked[code] = tube
                    break
                except (RedisError, OSError):
                    ledger.errors += 1
                    assert time.monotonic() - began < DEADLINE, "no answer after failover"
                    await asyncio.sleep(0.1)
            if time.monotonic() - began > 0.5:
                outage.append(time.monotonic() - began)
            if stop.is_set():
                return


@pytest.mark.slow
@pytest.mark.cluster
def test_failover_keeps_answering(short_dir: Path, record_property: pytest.RecordProperty) -> None:
    cluster = ReplicatedCluster(short_dir).start()
    try:
        victim = cluster.owner(keys.journal(ROUND))
        url = cluster.nodes[0].url if cluster.nodes[0] is not victim else cluster.nodes[1].url
        settings = fault_settings(url, short_dir, redis_cluster=True, redis_timeout=1.0)
        ledger, outage = Ledger(), []

        async def run() -> int:
            svc = Services.build(settings)
            assert isinstance(svc.redis, RedisCluster)
            stop = asyncio.Event()
            devices = await setup_round(svc, DEVICES)

            async def killer() -> None:
                while len(ledger.acked) < KILL_AFTER:
                    await asyncio.sleep(0.002)
                victim.kill()
                killed = len(ledger.acked)
                while len(ledger.acked) < killed + KILL_AFTER:  # and the stream goes on
                    await asyncio.sleep(0.01)
                stop.set()

            try:
                await asyncio.wait_for(
                    asyncio.gather(
                        killer(),
                        *(_stream(svc, d, i, ledger, stop, outage) for i, d in enumerate(devices)),
                    ),
                    120,
                )
            finally:
                await svc.close()
            return len(ledger.acked)

        acked = asyncio.run(run())
        new = cluster.owner(keys.journal(ROUND))
        assert new is not victim
        r = redis.Redis(port=new.port)
        lost = missing(r, ledger)
        r.close()
    finally:
        cluster.stop()
    window = max(outage, default=0.0)
    record_property("lost", len(lost))
    record_property("outage_s", round(window, 2))
    print(
        f"\n[failover] acked={acked} lost={len(lost)} errors={ledger.errors} "
        f"longest wait={window:.2f}s"
    )
    assert acked >= 2 * KILL_AFTER
    # Asynchronous replication: what the primary acknowledged in its last moments may be
    # missing; the window is bounded by what one round trip per device can carry.
    assert len(lost) <= DEVICES * 2
