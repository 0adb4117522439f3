"""Device time: each operation's own time is the sampled-at time, unless the clock is off."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from sampling import archive, localtime
from sampling.binding import keys
from sampling.binding.models import Round
from sampling.binding.service import UNTRUSTED_CLOCK
from sampling.binding.tube import TubeRecord
from tests.conftest import Api, resident, tube

HOURS = 3600.0


@pytest.fixture
def tok(api: Api, r: redis.Redis) -> str:
    """A scanner at S1 in round r1 (pool 5), the round opened five hours ago."""
    api.round(pool=5)
    found = msgspec.msgpack.decode(r.hget(keys.ROUNDS, "r1"), type=Round)
    earlier = msgspec.structs.replace(found, created_at=time.time() - 5 * HOURS)
    r.hset(keys.ROUNDS, "r1", msgspec.msgpack.encode(earlier))
    api.site("S1")
    return api.device("d1", site="S1")


def post(api: Api, tok: str, path: str, body: dict[str, Any]) -> Any:
    return api.post(f"/v1/rounds/r1{path}", tok, body)


def record(r: redis.Redis, code: str) -> TubeRecord:
    return TubeRecord(r.get(keys.tube("r1", code)))


def journal(r: redis.Redis) -> list[dict[str, str]]:
    return [
        {k.decode(): v.hex() if k == b"r" else v.decode() for k, v in f.items()}
        for _, f in r.xrange(keys.journal("r1"))
    ]


def test_online_ops_keep_the_device_time(api: Api, tok: str, r: redis.Redis) -> None:
    t0 = int(time.time() - 2 * HOURS)
    opened = post(api, tok, "/tubes", {"op": "o1", "seq": 1, "tube": tube(1), "at": t0})
    assert opened.status_code == 201, opened.text
    assert opened.json()["clock"] == "device"
    for n in range(5):
        body = {"op": f"s{n}", "seq": 2 + n, "resident": resident(n), "at": t0 + 60 * (n + 1)}
        got = post(api, tok, f"/tubes/{tube(1)}/scans", body)
        assert got.status_code == 200, got.text
        assert got.json()["clock"] == "device"
        assert got.json()["message"] == ""
    rec = record(r, tube(1))
    assert rec.opened_at == t0
    assert [t for _, t in rec.members] == [t0 + 60 * (n + 1) for n in range(5)]
    assert rec.closed_at == t0 + 300  # closed itself when full, at the last scan's time
    entries = journal(r)
    assert [e["at"] for e in entries] == [str(t0 * 1000)] + [
        str((t0 + 60 * (n + 1)) * 1000) for n in range(5)
    ] + [str((t0 + 300) * 1000)]
    assert all("clk" not in e for e in entries)
    # Scans per minute count each scan in the minute it was taken.
    spm = {int(k): int(v) for k, v in r.hgetall(keys.scans_per_minute("r1")).items()}
    assert spm == {t - t % 60: 1 for t in (t0 + 60 * (n + 1) for n in range(5))}

    # "where and when": the refusal names the device's time, in the district's zone.
    t2 = time.time() - HOURS
    assert post(api, tok, "/tubes", {"op": "o2", "seq": 7, "tube": tube(2), "at": t2}).is_success
    again = {"op": "s9", "seq": 8, "resident": resident(0), "at": t2 + 5}
    refused = post(api, tok, f"/tubes/{tube(2)}/scans", again)
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert f"at {localtime.hm(t0 + 60)}" in detail, detail
    assert tube(1) in detail


def test_untrusted_clock_is_applied_with_receive_time_and_flagged(
    api: Api, tok: str, r: redis.Redis
) -> None:
    now = time.time()
    future = now + 2 * HOURS
    opened = post(api, tok, "/tubes", {"op": "o1", "seq": 1, "tube": tube(1), "at": future})
    assert opened.status_code == 201
    assert opened.json()["clock"] == "untrusted"
    assert opened.json()["message"] == UNTRUSTED_CLOCK
    # Before the round opened (five hours ago, less the skew): not trusted either,
    # and the resident is bound all the same.
    body = {"op": "s1", "seq": 2, "resident": resident(1), "at": now - 6 * HOURS}
    scanned = post(api, tok, f"/tubes/{tube(1)}/scans", body)
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["clock"] == "untrusted"
    assert scanned.json()["count"] == 1
    # Within the skew ahead is trusted.
    body = {"op": "s2", "seq": 3, "resident": resident(2), "at": now + 120}
    assert post(api, tok, f"/tubes/{tube(1)}/scans", body).json()["clock"] == "device"
    # No device time: the server's, not flagged.
    body = {"op": "s3", "seq": 4, "resident": resident(3)}
    assert post(api, tok, f"/tubes/{tube(1)}/scans", body).json()["clock"] == "server"

    rec = record(r, tube(1))
    assert abs(rec.opened_at - now) < 5
    assert abs(rec.members[0][1] - now) < 5
    assert rec.members[1][1] == int(now + 120)
    entries = journal(r)
    assert [e.get("clk") for e in entries] == ["u", "u", None, None]
    assert [("at" in e) for e in entries] == [False, False, True, False]
    assert r.hget(keys.count("r1"), "clock_untrusted") == b"2"


def test_batch_times_and_retries(api: Api, tok: str, r: redis.Redis, tmp_path: Path) -> None:
    t0 = int(time.time() - 3 * HOURS)
    ops: list[dict[str, Any]] = [
        {"op": "b1", "seq": 1, "kind": "open", "tube": tube(1), "capacity": 5, "at": t0}
    ]
    ops += [
        {
            "op": f"b{n + 2}",
            "seq": n + 2,
            "kind": "scan",
            "tube": tube(1),
            "resident": resident(n),
            "at": t0 + 600 * (n + 1),
        }
        for n in range(3)
    ]
    ops.append({"op": "b9", "seq": 5, "kind": "close", "tube": tube(1), "at": t0 + 2000})
    ops.append(
        {"op": "b10", "seq": 6, "kind": "open", "tube": tube(2), "at": time.time() + 9 * HOURS}
    )
    resp = api.post("/v1/rounds/r1/batches", tok, {"ops": ops})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [x["status"] for x in results] == ["ok"] * 6
    assert [x["clock"] for x in results] == ["device"] * 5 + ["untrusted"]

    # The same batch again: replayed, same answers; one time changed: reused op id.
    again = api.post("/v1/rounds/r1/batches", tok, {"ops": ops}).json()["results"]
    assert all(x["replayed"] for x in again)
    changed = [dict(ops[1], at=t0 + 1)]
    assert api.post("/v1/rounds/r1/batches", tok, {"ops": changed}).json()["results"][0][
        "status"
    ] == ("operation_reused")

    async def drain() -> None:
        client = AsyncRedis.from_url(api.client.app.state.services.settings.redis_url)
        await archive.drain(client, "r1", tmp_path)
        await client.aclose()

    asyncio.run(drain())
    archive.materialize(tmp_path, "r1")
    out = archive.round_dir(tmp_path, "r1")
    bound = pl.read_parquet(out / "bindings.parquet").sort("scanned_at")
    assert bound["scanned_at"].to_list() == [(t0 + 600 * (n + 1)) * 1000 for n in range(3)]
    tubes = pl.read_parquet(out / "tubes.parquet").sort("tube")
    row = tubes.row(0, named=True)
    assert (row["opened_at"], row["closed_at"]) == (t0 * 1000, (t0 + 2000) * 1000)
    # The untrusted open was recorded at the receive time (the stream id's ms).
    assert abs(tubes.row(1, named=True)["opened_at"] / 1000 - time.time()) < 30


def test_device_time_is_bounded(api: Api, tok: str) -> None:
    body = {"op": "o1", "seq": 1, "tube": tube(1), "at": -5}
    resp = post(api, tok, "/tubes", body)
    assert resp.status_code == 400
    assert "at" in resp.text
    schema = api.client.get("/docs/openapi.json").json()["components"]["schemas"]
    for name in ("OpenTube", "Scan", "Undo", "CloseTube", "BatchOp"):
        assert "not trusted" in schema[name]["properties"]["at"]["description"], name
    assert "untrusted" in str(schema["OpResult"]["properties"]["clock"])


def test_device_progress(api: Api, tok: str) -> None:
    ops = [{"op": "b1", "seq": 1, "kind": "open", "tube": tube(1)}]
    ops.append({"op": "b4", "seq": 4, "kind": "scan", "tube": tube(1), "resident": resident(1)})
    assert api.post("/v1/rounds/r1/batches", tok, {"ops": ops}).status_code == 200
    got = api.get("/v1/rounds/r1/seq", tok)
    assert got.status_code == 200, got.text
    assert got.json() == {"device": "d1", "round": "r1", "highest": 4, "gaps": [[2, 3]]}
    assert api.get("/v1/rounds/r9/seq", tok).status_code == 404
