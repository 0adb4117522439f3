"""Held results resolved: who may decide, a reason required, the decision applied and
journaled in one step, visible in ``sampling audit`` and in the archived results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
import redis
from click.testing import CliRunner

from sampling import archive
from sampling.cli import main
from sampling.lab import keys
from sampling.lab.sources import scan_round
from sampling.settings import Settings
from tests.conftest import SECRET, Api, redis_env, resident, tube

pytestmark = pytest.mark.cluster_too

# Results must fall inside the round (it began today): a 2022 time is refused.
AT = datetime.now(UTC).replace(microsecond=0).isoformat()
HELD = f"/v1/rounds/r1/results/held/{tube(1)}"


def _env(settings: Settings) -> dict[str, str]:
    return {
        **redis_env(settings),
        "SAMPLING_DATA_DIR": str(settings.data_dir),
        "SAMPLING_SECRET": SECRET,
    }


def _conflict(api: Api) -> dict[str, str]:
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    for n in range(3):
        assert api.scan(tok, tube(1), resident(n)).status_code == 200
    toks = {
        "lab": api.device("lab1", role="lab", lab="L1"),
        "sup": api.device("sup1", role="lab", lab="L1", supervisor=True),
        "other": api.device("sup2", role="lab", lab="L2", supervisor=True),
    }
    _post(api, toks["lab"], "negative")
    held = _post(api, toks["lab"], "positive", ct_orf1ab=22.5, ct_n=24.1)
    assert held["held"] == 1
    return toks


def _post(api: Api, token: str, outcome: str, **kw: Any) -> dict[str, Any]:
    # The tube is never boxed here, so lab L1 does not hold it and may not report
    # it itself (issue 11.3); the admin reports L1's values on its behalf.
    del token
    row = {"tube": tube(1), "outcome": outcome, "tested_at": AT, "lab": "L1", **kw}
    resp = api.post("/v1/rounds/r1/results", api.admin, {"results": [row]})
    assert resp.status_code == 200, resp.text
    got: dict[str, Any] = resp.json()
    return got


def test_supervisor_takes_the_held_value_with_a_reason(
    api: Api, r: redis.Redis, settings: Settings
) -> None:
    toks = _conflict(api)
    case = api.get(HELD, toks["lab"]).json()
    assert case["stored"]["outcome"] == "negative"
    assert [h["result"]["outcome"] for h in case["held"]] == ["positive"]
    value = case["held"][0]["value"]
    decide = {"decision": "held", "value": value, "reason": "re-run on the second PCR: positive"}

    # A plain lab device, another lab's supervisor, a missing reason: refused, nothing changes.
    plain = api.post(f"{HELD}/resolve", toks["lab"], decide)
    assert (plain.status_code, plain.json()["code"]) == (403, "forbidden")
    other = api.post(f"{HELD}/resolve", toks["other"], decide)
    assert other.status_code == 403 and "L2" in other.json()["detail"]
    blank = api.post(f"{HELD}/resolve", toks["sup"], decide | {"reason": "  "})
    assert (blank.status_code, blank.json()["code"]) == (400, "bad_input")
    assert r.hget(keys.result("r1"), tube(1)).startswith(b"negative|")
    assert r.hlen(keys.review("r1")) == 1

    before = r.xlen(keys.journal("r1"))
    done = api.post(f"{HELD}/resolve", toks["sup"], decide)
    assert done.status_code == 200, done.text
    assert done.json()["result"]["outcome"] == "positive"
    assert r.hget(keys.result("r1"), tube(1)).decode() == value
    assert r.hlen(keys.review("r1")) == 0
    assert r.xlen(keys.journal("r1")) == before + 1
    (_, entry), *_ = r.xrevrange(keys.journal("r1"), count=1)
    assert entry[b"k"] == b"result_resolved" and entry[b"d"] == b"sup1"
    assert entry[b"decision"] == b"held" and entry[b"reason"].startswith(b"re-run")
    assert entry[b"was"].startswith(b"negative|")

    again = api.post(f"{HELD}/resolve", toks["sup"], decide)
    assert again.status_code == 404  # nothing is held any more

    # The audit shows who decided, and why.
    res = CliRunner().invoke(main, ["audit", "tube", tube(1), "--round", "r1", "--json"],
                             env=_env(settings))  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    last = rows[-1]
    assert last["kind"] == "result_resolved" and last["device"] == "sup1"
    assert last["role"] == "lab"
    assert "decision held" in last["detail"] and "reason re-run" in last["detail"]
    assert "was negative, lab L1, tested " in last["detail"]

    # The archived results read the decision as the tube's result.
    async def drain() -> None:
        await archive.drain(api.client.app.state.services.redis, "r1", settings.data_dir)

    api.client.blocking_portal.call(drain)  # type: ignore[union-attr]
    archive.materialize(settings.data_dir, "r1")
    results = scan_round(settings.data_dir, "r1").results.collect()
    assert results.select("tube", "outcome").rows() == [(tube(1), "positive")]


def test_retest_withdraws_the_result_and_the_next_one_is_stored(
    api: Api, r: redis.Redis, settings: Settings
) -> None:
    toks = _conflict(api)
    done = api.post(
        f"{HELD}/resolve", api.admin, {"decision": "retest", "reason": "values disagree"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["result"] is None
    assert not r.hexists(keys.result("r1"), tube(1))
    assert _post(api, toks["lab"], "negative")["stored"] == 1

    async def drain() -> None:
        await archive.drain(api.client.app.state.services.redis, "r1", settings.data_dir)

    api.client.blocking_portal.call(drain)  # type: ignore[union-attr]
    archive.materialize(settings.data_dir, "r1")
    results = scan_round(settings.data_dir, "r1").results.collect()
    assert results.select("outcome").to_series().to_list() == ["negative"]


def test_retest_alone_leaves_no_result_in_the_archive(
    api: Api, r: redis.Redis, settings: Settings
) -> None:
    _conflict(api)
    done = api.post(f"{HELD}/resolve", api.admin, {"decision": "retest", "reason": "tube leaked"})
    assert done.status_code == 200, done.text

    async def drain() -> None:
        await archive.drain(api.client.app.state.services.redis, "r1", settings.data_dir)

    api.client.blocking_portal.call(drain)  # type: ignore[union-attr]
    archive.materialize(settings.data_dir, "r1")
    assert scan_round(settings.data_dir, "r1").results.collect().height == 0
    assert pl.read_parquet(settings.data_dir / "archive" / "r1" / "results.parquet").height == 0


def test_a_decision_on_a_stale_view_is_refused(api: Api, r: redis.Redis) -> None:
    toks = _conflict(api)
    case = api.get(HELD, toks["sup"]).json()
    stale = {"decision": "keep", "reason": "stored value confirmed", "stored": "invalid||||1"}
    got = api.post(f"{HELD}/resolve", toks["sup"], stale)
    assert (got.status_code, got.json()["code"]) == (409, "result_changed")
    assert r.hlen(keys.review("r1")) == 1
    keep = {
        "decision": "keep",
        "reason": "stored value confirmed",
        "held": [case["held"][0]["value"]],
    }
    assert api.post(f"{HELD}/resolve", toks["sup"], keep).status_code == 200
    assert r.hget(keys.result("r1"), tube(1)).startswith(b"negative|")
    assert r.hlen(keys.review("r1")) == 0


def test_cli_resolve(api: Api, r: redis.Redis, settings: Settings) -> None:
    _conflict(api)
    args = ["results", "resolve", tube(1), "--round", "r1", "--decision", "held", "--by", "王主任"]
    short = CliRunner().invoke(main, [*args, "--reason", "x"], env=_env(settings))
    assert short.exit_code != 0 and "reason" in short.output
    ok = CliRunner().invoke(main, [*args, "--reason", "second run confirms"], env=_env(settings))
    assert ok.exit_code == 0, ok.output
    assert r.hget(keys.result("r1"), tube(1)).startswith(b"positive|")
    (_, entry), *_ = r.xrevrange(keys.journal("r1"), count=1)
    assert entry[b"d"].decode() == "王主任"
