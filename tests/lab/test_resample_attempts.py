"""Re-sampling until there is a result, through the API: a resident is re-sampled
again only after the previous attempt came back invalid or was lost at intake, and
the archived round gives one state (the latest attempt's) and one order per attempt."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from sampling import archive
from sampling.lab import keys as lab_keys
from sampling.lab import report
from sampling.store.client import from_settings
from tests.boxing.field import Field, new_box
from tests.conftest import Api, resident, tube

if TYPE_CHECKING:
    import redis

    from sampling.settings import Settings

# Results must fall inside the round (it began today): a 2022 time is refused.
AT = datetime.now(UTC).replace(microsecond=0).isoformat()
PERSON = resident(7001)


def _deliver(f: Field, codes: list[str], *, scan: bool = True) -> None:
    """Box, seal, carry and receive ``codes`` at lab LA; intake scans them (or not)."""
    box = new_box()
    assert f.open(box).status_code == 201
    for t in codes:
        assert f.add(box, t).status_code == 200
    assert f.seal(box, len(codes), len(codes), lab="LA").status_code == 200
    for step in (f.handover, f.pickup, f.receive):
        assert step(box).status_code == 200
    if scan:
        for t in codes:
            assert f.intake(box, t).status_code == 200
    assert f.close_intake(box).status_code == 200


def _result(f: Field, t: str, outcome: str) -> None:
    row: dict[str, Any] = {"tube": t, "outcome": outcome, "tested_at": AT}
    if outcome == "positive":
        row |= {"ct_orf1ab": 25.0, "ct_n": 26.0}
    resp = f.api.post("/v1/rounds/r1/results", f.lab, {"results": [row]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["stored"] == 1


def _resample(f: Field, t: str) -> Any:
    tok = f.scanner["S1"]
    assert f.api.open(tok, t, purpose="resample").status_code == 201
    return f.api.scan(tok, t, PERSON)


def _close(f: Field, t: str) -> None:
    seq = f.api.next_seq(f.scanner["S1"])
    body = {"op": f"c{seq}", "seq": seq}
    assert f.api.post(f"/v1/rounds/r1/tubes/{t}/close", f.scanner["S1"], body).status_code == 200


def test_resample_until_there_is_a_result(api: Api, r: redis.Redis, settings: Settings) -> None:
    f = Field(api)
    tok = f.scanner["S1"]
    pool = tube(7000)
    assert api.open(tok, pool).status_code == 201
    assert api.scan(tok, pool, PERSON).status_code == 200
    _close(f, pool)
    _deliver(f, [pool])
    _result(f, pool, "invalid")

    first, second, third, fourth = (tube(7000 + n) for n in range(1, 5))
    assert _resample(f, first).status_code == 200  # attempt 1
    refused = _resample(f, second)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "resident_already_sampled"  # attempt 1 not back yet
    assert (
        f"re-sampled in tube {first}, which has not come back invalid" in refused.json()["detail"]
    )

    _deliver(f, [first])
    _result(f, first, "invalid")
    assert api.scan(tok, second, PERSON).status_code == 200  # attempt 2

    assert _resample(f, third).status_code == 409
    _deliver(f, [second], scan=False)  # intake closes with attempt 2 missing
    assert api.scan(tok, third, PERSON).status_code == 200  # attempt 3

    _deliver(f, [third])
    _result(f, third, "negative")
    assert _resample(f, fourth).status_code == 409  # a result: no more attempts
    # the live counters: orders made by the invalid pool and the invalid attempt 1,
    # re-samples resulted (attempts 1 and 3; attempt 2 was lost)
    lab = {k.decode(): int(v) for k, v in r.hgetall(lab_keys.count("r1")).items()}
    assert (lab["resample_ordered"], lab["resample_resulted"]) == (2, 2)

    async def drain() -> None:
        client = from_settings(settings)
        try:
            await archive.drain(client, "r1", settings.data_dir)
        finally:
            await client.aclose()

    asyncio.run(drain())
    archive.materialize(settings.data_dir, "r1")
    got = report.collect(settings.data_dir, "r1", ["states", "state_counts", "resample_orders"])
    summary = report.summary("r1", got)
    assert summary["bound"] == sum(summary["states"].values())
    states = got["states"]
    assert states["rhash"].n_unique() == states.height
    person = states.filter(pl.col("tube") == pool)
    assert person.select("attempt", pl.col("state").cast(pl.String)).rows() == [(3, "negative")]
    orders = got["resample_orders"].filter(pl.col("tube").is_in([pool, first, second]))
    assert orders.sort("order").select("order", "tube", "order_state", "resample_tube").rows() == [
        (1, pool, "resulted", first),
        (2, first, "lost", second),
        (3, second, "resulted", third),
    ]
