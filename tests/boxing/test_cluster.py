"""Boxing and lab results on a 3-master cluster: under the waitaof setting, WAITAOF goes
to the node that owns the round's slot, on the connection that wrote, as for scans."""

from __future__ import annotations

import asyncio

import pytest
import redis

from sampling.auth.models import Device
from sampling.binding import keys
from sampling.binding.models import RoundIn, SiteIn
from sampling.binding.rounds import Rounds, Sites
from sampling.binding.service import Binder
from sampling.boxing.service import Boxer
from sampling.lab.models import LabResult
from sampling.lab.parse import Parsed
from sampling.lab.results import LabResults
from sampling.privacy import ResidentHasher
from sampling.store.client import connect
from tests.boxing.field import new_box
from tests.cluster import Cluster
from tests.conftest import SECRET, resident, tube

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SCANNER = Device(id="d1", role="scanner", site="S1")
SEALER = Device(id="seal1", role="sealer", site="S1")


def _waitaofs(cluster: Cluster) -> dict[int, int]:
    """WAITAOF calls each node has served so far, by port."""
    out = {}
    for node in cluster.nodes:
        with redis.Redis(port=node.port) as r:
            stats = r.info("commandstats").get("cmdstat_waitaof", {})
        out[node.port] = int(stats.get("calls", 0))
    return out


def test_waitaof_goes_to_the_round_owner(cluster: Cluster, cr: redis.RedisCluster) -> None:
    default = cr.get_default_node()
    # A round whose slot another node than the client's default one owns: there a
    # WAITAOF routed by redis-py's default would confirm nothing about the write.
    round_id = next(
        f"r{i}" for i in range(1, 50) if cr.get_node_from_key(keys.meta(f"r{i}")) != default
    )
    owner = cr.get_node_from_key(keys.meta(round_id))
    box, t = new_box(), tube(1)

    async def run() -> tuple[str, str]:
        client = connect(cluster.url, cluster=True)
        boxer, lab = Boxer(client, waitaof=True), LabResults(client, waitaof=True)
        try:
            rounds, sites = Rounds(client), Sites(client)
            await rounds.create(RoundIn(id=round_id, name=round_id, pool=5))
            await sites.create(SiteIn(id="S1", name="S1", street="st", community="c", grid="g"))
            binder = Binder(client, ResidentHasher(bytes.fromhex(SECRET)), rounds, sites)
            await binder.open(SCANNER, round_id, t, 1, "o1", 1, "pool")
            await binder.scan(SCANNER, round_id, t, 2, "s1", resident(1))
            before = _waitaofs(cluster)
            await boxer.open(SEALER, round_id, box, 1, "b1")
            await boxer.add(SEALER, round_id, box, t, 2, "b2")
            sealed = await boxer.seal(SEALER, round_id, box, 3, "b3", 1, 1)
            result = LabResult(
                tube=t, outcome="negative", ct_orf1ab=None, ct_n=None, lab="L1", tested_at=1
            )
            report = await lab.ingest(
                round_id, Parsed(rows_in=1, good=[(1, result)]), device="admin"
            )
            after = _waitaofs(cluster)
            sent = {p: after[p] - before[p] for p in after}
            # Three custody steps and one record step; a script the node did not have
            # yet is loaded and run again, with its WAITAOF.
            assert sent.pop(int(owner.port)) >= 4
            assert set(sent.values()) == {0}
            return sealed.state, report.rows[0].status
        finally:
            # The runners' own clients to the nodes they sent WAITAOF to.
            await boxer.shutdown()
            await lab.shutdown()
            await client.aclose()

    assert asyncio.run(run()) == ("sealed", "stored")
