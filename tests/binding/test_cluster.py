"""The binding core on a 3-master Redis Cluster gives the same answers as on one server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from sampling.api.app import create_app
from sampling.auth.models import Device
from sampling.binding import keys
from sampling.binding.models import Batch, BatchOp, RiskFlag, RiskUpdate, RoundIn, SiteIn
from sampling.binding.rounds import Rounds, Sites
from sampling.binding.service import Binder
from sampling.errors import Refusal
from sampling.privacy import ResidentHasher
from sampling.settings import Settings
from sampling.store.client import connect
from sampling.store.embedded import EmbeddedServer
from tests.cluster import Cluster
from tests.conftest import SECRET, Api, resident, tube

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

D1 = Device(id="d1", role="scanner", site="S1")
D2 = Device(id="d2", role="scanner", site="S2")


async def _outcome(coro: Any) -> tuple[Any, ...]:
    try:
        res = await coro
    except Refusal as e:
        return (e.code, e.detail.get("count"))
    return (res.status, res.count, res.closed, res.replayed)


async def scenario(url: str, *, cluster: bool, waitaof: bool = False) -> list[Any]:
    """Open, scan, duplicate, undo, close, batch and replay; every answer, in order."""
    client = connect(url, cluster=cluster)
    rounds, sites = Rounds(client), Sites(client)
    binder = Binder(client, ResidentHasher(bytes.fromhex(SECRET)), rounds, sites, waitaof=waitaof)
    try:
        for rid in ("r1", "r2"):
            await rounds.create(RoundIn(id=rid, name=rid, pool=5))
        for s in ("S1", "S2"):
            await sites.create(SiteIn(id=s, name=s, street="st", community="c", grid="g"))
        flags = [
            RiskFlag(resident=resident(9), flags="I"),
            RiskFlag(resident=resident(8), flags="R"),
        ]
        await binder.set_risk("r1", RiskUpdate(residents=flags, reason="test"))
        out: list[Any] = []

        def o(coro: Any) -> None:
            out.append(coro)

        r1, t1, t2, t3 = "r1", tube(1), tube(2), tube(3)
        o(await _outcome(binder.open(D1, r1, t1, 1, "o1", None, "pool")))
        o(await _outcome(binder.open(D1, r1, t1, 2, "o2", 10, "pool")))
        o(await _outcome(binder.open(D1, "r2", t1, 1, "o1", None, "pool")))  # claimed by r1
        for i in range(1, 4):
            o(await _outcome(binder.scan(D1, r1, t1, 2 + i, f"s{i}", resident(i))))
        o(await _outcome(binder.scan(D1, r1, t1, 6, "dup", resident(1))))
        o(await _outcome(binder.scan(D2, r1, t1, 1, "x", resident(4))))
        o(await _outcome(binder.undo(D1, r1, t1, 7, "u1", resident(1))))
        o(await _outcome(binder.undo(D1, r1, t1, 8, "u2", None)))
        o(await _outcome(binder.scan(D1, r1, t1, 9, "s8", resident(8))))
        o(await _outcome(binder.close(D1, r1, t1, 10, "c1")))
        o(await _outcome(binder.scan(D1, r1, t1, 11, "s5", resident(5))))
        o(await _outcome(binder.scan(D1, r1, t1, 3, "s1", resident(1))))  # retry
        o(await _outcome(binder.scan(D1, r1, t1, 3, "s1", resident(2))))  # reused
        o(await _outcome(binder.scan(D1, r1, t1, 3, "zz", resident(2))))  # conflict
        batch = Batch(
            ops=[
                BatchOp(op="b1", seq=20, kind="open", tube=t2, capacity=1),
                BatchOp(op="b2", seq=21, kind="scan", tube=t2, resident=resident(9)),
                BatchOp(op="b3", seq=23, kind="open", tube=t3, purpose="resample"),
                BatchOp(op="b4", seq=24, kind="scan", tube=t3, resident=resident(7)),
                BatchOp(op="b5", seq=25, kind="scan", tube=t3, resident=resident(1)),
            ]
        )
        for _ in range(2):
            got = await binder.batch(D1, r1, batch)
            o(
                [(x.status, x.count, x.closed, x.replayed) for x in got.results]
                + [got.applied, got.refused, [list(g) for g in got.gaps]]
            )
        tube_view = await binder.tube(r1, t1)
        o((tube_view.state, tube_view.count, tube_view.capacity, tube_view.site))
        o(sorted((await rounds.counters(r1)).items()))
        return out
    finally:
        await binder.shutdown()
        await client.aclose()


EXPECTED_HEAD = [
    ("ok", 0, False, False),
    ("tube_used", 0),
    ("tube_used", 0),
    ("ok", 1, False, False),
    ("ok", 2, False, False),
    ("ok", 3, False, False),
    ("resident_already_sampled", 3),
    ("tube_other_site", 0),
    ("undo_not_last", 3),
    ("ok", 2, False, False),
    ("risk_needs_single_tube", 2),
    ("ok", 2, True, False),
    ("tube_closed", 2),
    ("ok", 1, False, True),
    ("operation_reused", 0),
    ("seq_conflict", 0),
]


def test_cluster_answers_like_one_server(
    cluster: Cluster, cr: redis.RedisCluster, server: EmbeddedServer, r: redis.Redis
) -> None:
    on_cluster = asyncio.run(scenario(cluster.url, cluster=True))
    on_server = asyncio.run(scenario(server.url, cluster=False))
    assert on_cluster[: len(EXPECTED_HEAD)] == EXPECTED_HEAD
    first, again = on_cluster[len(EXPECTED_HEAD) : len(EXPECTED_HEAD) + 2]
    assert first[:5] == [
        ("ok", 0, False, False),
        ("ok", 1, True, False),
        ("ok", 0, False, False),
        ("resample_without_binding", 0, False, False),
        ("ok", 1, True, False),
    ]
    assert first[5:] == [4, 1, [[12, 19], [22, 22]]]
    assert again == [(s, c, cl, True) for s, c, cl, _ in first[:5]] + first[5:]
    assert on_cluster == on_server


def test_round_keys_share_one_slot_rounds_spread(cr: redis.RedisCluster) -> None:
    rh = bytes(range(8))
    one_round = [
        keys.meta("r1"),
        keys.count("r1"),
        keys.journal("r1"),
        keys.oplog("r1", "d1"),
        keys.revoked("r1"),
        keys.tube("r1", tube(1)),
        keys.resident_bucket("r1", rh),
        keys.risk_bucket("r1", rh),
        keys.archive("r1"),
    ]
    assert len({cr.cluster_keyslot(k) for k in one_round}) == 1
    slots = {cr.cluster_keyslot(keys.meta(f"r{i}")) for i in range(1, 13)}
    assert len(slots) == 12
    owners = {cr.get_node_from_key(keys.meta(f"r{i}")).name for i in range(1, 13)}
    assert len(owners) == 3


def test_cluster_journal_and_state_land_on_the_round_node(
    cluster: Cluster, cr: redis.RedisCluster
) -> None:
    asyncio.run(scenario(cluster.url, cluster=True))
    node = cr.get_node_from_key(keys.meta("r1"))
    direct = redis.Redis(host=node.host, port=node.port)
    try:
        # set-up (issue 11.7): the round's creation and its 2 risk flags; then ok:
        # open, 3 scans, undo, close, batch: 2 opens + 2 scans (each closing)
        assert direct.xlen(keys.journal("r1")) == 1 + 2 + 1 + 3 + 1 + 1 + 2 + 2 * 2
        assert direct.exists(keys.tube("r1", tube(1)))
    finally:
        direct.close()


def test_cluster_with_waitaof(cluster: Cluster, cr: redis.RedisCluster) -> None:
    """The waitaof durability setting: apply.lua and WAITAOF in one pipeline."""
    out = asyncio.run(scenario(cluster.url, cluster=True, waitaof=True))
    assert out[: len(EXPECTED_HEAD)] == EXPECTED_HEAD


def test_api_on_cluster(cluster: Cluster, cr: redis.RedisCluster, tmp_path: Any) -> None:
    settings = Settings(
        redis_url=cluster.url, redis_cluster=True, data_dir=tmp_path, secret_hex=SECRET
    )
    with TestClient(app=create_app(settings)) as client:
        api = Api(client)
        api.round()
        api.site("S1")
        tok = api.device("d1", site="S1")
        assert api.open(tok, tube(1), capacity=5).status_code == 201
        resp = api.scan(tok, tube(1), resident(1))
        assert resp.status_code == 200, resp.text
        again = api.scan(tok, tube(1), resident(1))
        assert again.status_code == 409
        assert again.json()["code"] == "resident_already_sampled"
        ops = [
            {"op": "b1", "seq": 10, "kind": "scan", "tube": tube(1), "resident": resident(2)},
            {"op": "b2", "seq": 12, "kind": "close", "tube": tube(1)},
        ]
        first = api.post("/v1/rounds/r1/batches", tok, {"ops": ops})
        assert first.status_code == 200, first.text
        assert [x["status"] for x in first.json()["results"]] == ["ok", "ok"]
        assert first.json()["gaps"] == [[4, 9], [11, 11]]
        second = api.post("/v1/rounds/r1/batches", tok, {"ops": ops}).json()
        assert all(x["replayed"] for x in second["results"])
        assert api.post("/v1/devices/d1/revoke", api.admin, {}).status_code == 200
        assert api.scan(tok, tube(1), resident(3)).status_code == 401


def test_refused_opens_take_no_claim_on_cluster(cluster: Cluster, cr: redis.RedisCluster) -> None:
    """The claim (its own slot) and the round's keys live on different nodes: a refused
    open takes no claim, and a claim a request took is released by settle.lua there."""

    async def run() -> list[Any]:
        client = connect(cluster.url, cluster=True)
        try:
            rounds, sites = Rounds(client), Sites(client)
            binder = Binder(client, ResidentHasher(bytes.fromhex(SECRET)), rounds, sites)
            for rid in ("old", "new"):
                await rounds.create(RoundIn(id=rid, name=rid, pool=5))
            await sites.create(SiteIn(id="S1", name="S1", street="st", community="c", grid="g"))
            await rounds.close("old")
            out: list[Any] = [
                await _outcome(binder.open(D1, "old", tube(1), 1, "o1", None, "pool"))
            ]
            out.append(cr.hget(keys.tube_claim(tube(1)), tube(1)))
            # A claim taken by a request whose open the round then refused (the race the
            # pre-check cannot see) is released by that request's settle step.
            taken = cr.register_script(open_claim_lua())(
                keys=[keys.tube_claim(tube(2))], args=[tube(2), "old", "n1"]
            )
            out.append(taken)
            await binder._settle("old", "n1", {tube(2): 2}, set())
            out.append(cr.hget(keys.tube_claim(tube(2)), tube(2)))
            for n in (1, 2):
                got = await _outcome(binder.open(D1, "new", tube(n), n, f"n{n}", None, "pool"))
                out.append(got)
            return out
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [
        ("round_closed", 0),
        None,
        2,
        None,
        ("ok", 0, False, False),
        ("ok", 0, False, False),
    ]


def open_claim_lua() -> str:
    from sampling.store.scripts import source

    return source("sampling.binding", "claim.lua")
