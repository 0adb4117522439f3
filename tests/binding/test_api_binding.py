"""The binding core through the HTTP API: problems, garbled codes, auth, batches."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from sampling import codes
from sampling.binding import keys
from sampling.settings import Settings
from tests.binding import snapshot
from tests.conftest import Api, Store, resident, tube

pytestmark = pytest.mark.cluster_too

MAX_BATCH = 20
PROBLEM = "application/problem+json"


@pytest.fixture
def settings(store: Store, tmp_path: Path) -> Settings:
    return store.settings(tmp_path, max_batch=MAX_BATCH)


@pytest.fixture
def tok(api: Api) -> str:
    """A scanner at S1 in round r1 (pool 10); S2 and a scanner there exist too."""
    api.round()
    api.site("S1")
    api.site("S2")
    return api.device("d1", site="S1")


def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["title"]
    assert body["type"].endswith(code)
    # a sentence for a person, not the code again
    assert " " in body["detail"].strip()
    assert body["detail"].replace(" ", "_").lower() != code
    return body


def scan(api: Api, token: str, tube_code: str, res: str, seq: int, op: str = "") -> Any:
    return api.post(
        f"/v1/rounds/r1/tubes/{tube_code}/scans",
        token,
        {"op": op or f"op-{seq}", "seq": seq, "resident": res},
    )


def op(seq: int, kind: str, tube_code: str, **kw: Any) -> dict[str, Any]:
    return {"op": kw.pop("op", f"b-{seq}"), "seq": seq, "kind": kind, "tube": tube_code, **kw}


def batch(api: Api, token: str, ops: list[dict[str, Any]], round_id: str = "r1") -> Any:
    return api.post(f"/v1/rounds/{round_id}/batches", token, {"ops": ops})


# -- refusals as problems ----------------------------------------------------------


def test_every_refusal_is_a_problem(api: Api, tok: str, r: redis.Redis) -> None:
    other = api.device("d2", site="S2")
    assert api.open(tok, tube(1), capacity=5).status_code == 201
    assert api.open(tok, tube(2), capacity=1).status_code == 201
    assert api.scan(tok, tube(1), resident(1)).status_code == 200
    problem(api.open(tok, tube(1)), 409, "tube_used")
    problem(api.scan(tok, tube(9), resident(2)), 404, "tube_not_found")
    problem(api.scan(tok, tube(1), resident(1)), 409, "resident_already_sampled")
    problem(api.scan(other, tube(1), resident(3)), 403, "tube_other_site")
    problem(api.open(tok, tube(3), round_id="r9", capacity=5), 404, "round_not_found")
    undo = api.post(
        f"/v1/rounds/r1/tubes/{tube(2)}/undo", tok, {"op": "u1", "seq": 50, "resident": None}
    )
    problem(undo, 409, "tube_empty")
    close = api.post(f"/v1/rounds/r1/tubes/{tube(2)}/close", tok, {"op": "c1", "seq": 51})
    problem(close, 409, "tube_empty")
    undo = api.post(
        f"/v1/rounds/r1/tubes/{tube(1)}/undo",
        tok,
        {"op": "u2", "seq": 52, "resident": resident(7)},
    )
    problem(undo, 409, "undo_not_last")
    resample = api.open(tok, tube(4), purpose="resample")
    assert resample.status_code == 201, resample.text
    problem(api.scan(tok, tube(4), resident(8)), 409, "resample_without_binding")
    far = scan(api, tok, tube(1), resident(9), seq=900_000)
    problem(far, 400, "seq_out_of_range")
    risk = api.client.put(
        "/v1/rounds/r1/risk",
        json={"residents": [{"resident": resident(10), "flags": "I"}], "reason": "test"},
        headers=api.h(api.admin),
    )
    assert risk.status_code == 200, risk.text
    body = problem(api.scan(tok, tube(1), resident(10)), 409, "risk_needs_single_tube")
    assert "single tube" in body["detail"]
    api.post("/v1/rounds/r1/close", api.admin, {})
    problem(api.scan(tok, tube(1), resident(11)), 409, "round_closed")


def test_eleventh_scan_into_a_ten_tube(api: Api, tok: str) -> None:
    assert api.open(tok, tube(1)).status_code == 201  # the round's pool: 10
    for i in range(1, 11):
        resp = api.scan(tok, tube(1), resident(i))
        assert resp.status_code == 200, resp.text
    assert resp.json()["closed"] is True
    assert resp.json()["count"] == 10
    body = problem(api.scan(tok, tube(1), resident(11)), 409, "tube_closed")
    assert tube(1) in body["detail"]
    assert "10" in body["detail"]
    assert body["tube"] == tube(1)
    assert body["count"] == 10


def test_already_sampled_names_where_and_when(api: Api, tok: str) -> None:
    api.device("d2", site="S2")
    assert api.open(tok, tube(1)).status_code == 201
    assert api.scan(tok, tube(1), resident(1)).status_code == 200
    # another site's scanner meets the same resident
    other = api.device("d3", site="S2")
    assert api.open(other, tube(2)).status_code == 201
    body = problem(api.scan(other, tube(2), resident(1)), 409, "resident_already_sampled")
    assert tube(1) in body["detail"]
    assert "Point S1" in body["detail"]
    assert "Comm 1" in body["detail"]
    assert re.search(r"at \d\d:\d\d", body["detail"])


def test_tube_of_another_site(api: Api, tok: str) -> None:
    other = api.device("d2", site="S2")
    assert api.open(tok, tube(1)).status_code == 201
    problem(api.scan(other, tube(1), resident(1)), 403, "tube_other_site")
    problem(api.get(f"/v1/rounds/r1/tubes/{tube(1)}", other), 403, "forbidden")
    got = api.get(f"/v1/rounds/r1/tubes/{tube(1)}", tok)
    assert got.status_code == 200
    assert got.json()["site"] == "S1"
    assert api.get(f"/v1/rounds/r1/tubes/{tube(1)}", api.admin).status_code == 200


# -- garbled and malformed input changes nothing -------------------------------------


def _wrong_check(code: str) -> str:
    last = code[-1]
    alphabet = "0123456789X" if len(code) == codes.RESIDENT_LEN else "0123456789"
    return code[:-1] + next(c for c in alphabet if c != last)


def _swap(code: str) -> str:
    """Two neighbouring different characters swapped (the last such pair)."""
    i = next(i for i in range(len(code) - 2, 0, -1) if code[i] != code[i + 1])
    return code[:i] + code[i + 1] + code[i] + code[i + 2 :]


@pytest.mark.parametrize(
    ("where", "bad", "want_candidate"),
    [
        ("tube", _wrong_check(tube(5)), True),
        ("tube", tube(5)[:-1] + "7" if tube(5)[-1] != "7" else tube(5)[:-1] + "8", True),
        ("tube", _swap(tube(5)), True),
        ("resident", _swap(resident(5)), True),
        ("resident", _wrong_check(resident(5)), True),
        ("resident", resident(5)[:3] + "9" + resident(5)[4:], True),
        ("resident", resident(5)[:-2], False),  # truncated
        ("tube", tube(5)[:-3], False),
        ("resident", "hello world", False),
    ],
)
def test_garbled_code_changes_nothing(
    api: Api, tok: str, r: redis.Redis, where: str, bad: str, want_candidate: bool
) -> None:
    assert api.open(tok, tube(5)).status_code == 201
    before = snapshot(r)
    if where == "tube":
        resp = scan(api, tok, bad, resident(5), seq=2)
        good = tube(5)
    else:
        resp = scan(api, tok, tube(5), bad, seq=2)
        good = resident(5)
    body = problem(resp, 400, "garbled_code")
    assert body["field"] == where
    candidates = body.get("candidates", [])
    if want_candidate:
        assert good in candidates
        assert all(codes.is_valid(c) for c in candidates)
    else:
        assert candidates == []
    assert snapshot(r) == before


def test_garbled_code_in_open_and_batch_changes_nothing(api: Api, tok: str, r: redis.Redis) -> None:
    before = snapshot(r)
    problem(api.open(tok, _wrong_check(tube(1))), 400, "garbled_code")
    ops = [
        op(1, "open", tube(2), capacity=5),
        op(2, "scan", tube(2), resident=resident(1)),
        op(3, "scan", tube(2), resident=_wrong_check(resident(2))),
    ]
    body = problem(batch(api, tok, ops), 400, "garbled_code")
    assert resident(2) in body["candidates"]
    assert snapshot(r) == before


def test_wrong_kind_of_code_changes_nothing(api: Api, tok: str, r: redis.Redis) -> None:
    assert api.open(tok, tube(1)).status_code == 201
    before = snapshot(r)
    # a tube barcode read where the resident's code was expected
    body = problem(scan(api, tok, tube(1), tube(2), seq=2), 400, "bad_input")
    assert body["kind"] == "tube"
    assert "not a resident code" in body["detail"]
    body = problem(api.open(tok, resident(1)), 400, "bad_input")
    assert body["kind"] == "resident"
    problem(api.open(tok, codes.make_box(1)), 400, "bad_input")
    assert snapshot(r) == before


def test_lowercase_codes_are_normalized(api: Api, tok: str, r: redis.Redis) -> None:
    token_code = codes.make_resident_token("ABCDEFGH12345678")
    x_code = resident(0)
    assert x_code.endswith("X")
    assert api.open(tok, tube(1).lower()).status_code == 201
    assert r.exists(keys.tube("r1", tube(1)))
    assert scan(api, tok, tube(1).lower(), token_code.lower(), seq=2).status_code == 200
    assert scan(api, tok, tube(1), f"  {x_code.lower()} ", seq=3).status_code == 200
    problem(scan(api, tok, tube(1), token_code, seq=4), 409, "resident_already_sampled")
    problem(scan(api, tok, tube(1), x_code, seq=5), 409, "resident_already_sampled")
    got = api.get(f"/v1/rounds/r1/tubes/{tube(1).lower()}", tok).json()
    assert got["tube"] == tube(1)
    assert got["count"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"op": "x", "seq": 1, "resident": resident(1), "extra": 1},
        {"op": "x", "seq": 1},
        {"op": "x", "seq": 0, "resident": resident(1)},
        {"op": "x", "seq": 1_000_001, "resident": resident(1)},
        {"op": "", "seq": 1, "resident": resident(1)},
        {"op": "x", "seq": "one", "resident": resident(1)},
    ],
)
def test_malformed_body_changes_nothing(
    api: Api, tok: str, r: redis.Redis, body: dict[str, Any]
) -> None:
    assert api.open(tok, tube(1)).status_code == 201
    before = snapshot(r)
    resp = api.post(f"/v1/rounds/r1/tubes/{tube(1)}/scans", tok, body)
    problem(resp, 400, "invalid_request")
    assert snapshot(r) == before


def test_unknown_fields_refused_everywhere(api: Api, tok: str, r: redis.Redis) -> None:
    before = snapshot(r)
    problem(api.open(tok, tube(1), colour="red"), 400, "invalid_request")
    ops = [{**op(1, "open", tube(1)), "when": 5}]
    problem(batch(api, tok, ops), 400, "invalid_request")
    problem(api.post("/v1/rounds/r1/batches", tok, {"ops": [], "x": 1}), 400, "invalid_request")
    assert snapshot(r) == before


def test_oversized_batch_changes_nothing(api: Api, tok: str, r: redis.Redis) -> None:
    before = snapshot(r)
    ops = [op(1, "open", tube(1))] + [
        op(i + 2, "scan", tube(1), resident=resident(i)) for i in range(MAX_BATCH)
    ]
    body = problem(batch(api, tok, ops), 413, "batch_too_large")
    assert body["limit"] == MAX_BATCH
    assert body["size"] == MAX_BATCH + 1
    assert snapshot(r) == before
    assert batch(api, tok, ops[:MAX_BATCH]).status_code == 200


def test_batch_out_of_order_changes_nothing(api: Api, tok: str, r: redis.Redis) -> None:
    before = snapshot(r)
    for seqs in ([2, 1], [1, 1], [1, 3, 2]):
        ops = [op(s, "open", tube(s + 10 * n)) for n, s in enumerate(seqs)]
        problem(batch(api, tok, ops), 400, "bad_input")
    problem(batch(api, tok, []), 400, "bad_input")
    nameless = [op(1, "open", tube(1)), op(2, "undo", tube(1))]
    problem(batch(api, tok, nameless), 400, "bad_input")
    assert snapshot(r) == before


# -- auth --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["sealer", "courier", "lab", "viewer", "grid"])
def test_wrong_role_cannot_bind(api: Api, tok: str, r: redis.Redis, role: str) -> None:
    assert api.open(tok, tube(1)).status_code == 201
    other = api.device(f"x-{role}", role=role, site="S1")
    before = snapshot(r)
    problem(scan(api, other, tube(1), resident(1), seq=1), 403, "forbidden")
    problem(api.open(other, tube(2)), 403, "forbidden")
    problem(batch(api, other, [op(1, "open", tube(3))]), 403, "forbidden")
    assert snapshot(r) == before


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer garbage", "Bearer d1.wrongsecret", "Basic d1:x", "Bearer nobody.x"],
)
def test_missing_or_invalid_token(api: Api, tok: str, r: redis.Redis, header: str | None) -> None:
    before = snapshot(r)
    headers = {} if header is None else {"Authorization": header}
    resp = api.client.post(
        f"/v1/rounds/r1/tubes/{tube(1)}/scans",
        json={"op": "x", "seq": 1, "resident": resident(1)},
        headers=headers,
    )
    problem(resp, 401, "unauthorized")
    assert snapshot(r) == before


def test_revoked_token_stops_at_once(api: Api, tok: str, r: redis.Redis) -> None:
    assert api.open(tok, tube(1)).status_code == 201  # the hot path has cached the device
    resp = api.post("/v1/devices/d1/revoke", api.admin, {})
    assert resp.status_code == 200, resp.text
    assert resp.json()["revoked"] is True
    assert r.sismember(keys.revoked("r1"), "d1")
    before = snapshot(r)
    problem(api.scan(tok, tube(1), resident(1)), 401, "unauthorized")
    problem(api.get(f"/v1/rounds/r1/tubes/{tube(1)}", tok), 401, "unauthorized")
    assert snapshot(r) == before


def test_expired_token(api: Api, tok: str, r: redis.Redis) -> None:
    short = api.device("d9", site="S1", expires_in=1)
    assert api.open(short, tube(1)).status_code == 201
    time.sleep(1.1)
    before = snapshot(r)
    body = problem(api.scan(short, tube(1), resident(1)), 401, "unauthorized")
    assert "expired" in body["detail"]
    assert snapshot(r) == before


# -- single-op retries -------------------------------------------------------------


def test_single_retry_answers_the_same(api: Api, tok: str, r: redis.Redis) -> None:
    first = api.post("/v1/rounds/r1/tubes", tok, {"op": "o1", "seq": 1, "tube": tube(1)})
    assert first.status_code == 201
    ok = scan(api, tok, tube(1), resident(1), seq=2, op="s1")
    no = scan(api, tok, tube(1), resident(1), seq=3, op="s2")
    problem(no, 409, "resident_already_sampled")
    before = snapshot(r)
    again = api.post("/v1/rounds/r1/tubes", tok, {"op": "o1", "seq": 1, "tube": tube(1)})
    assert again.status_code == 201
    assert again.json() == {**first.json(), "replayed": True}
    ok2 = scan(api, tok, tube(1), resident(1), seq=2, op="s1")
    assert ok2.status_code == 200
    assert ok2.json() == {**ok.json(), "replayed": True}
    no2 = scan(api, tok, tube(1), resident(1), seq=3, op="s2")
    assert no2.json() == no.json()
    assert snapshot(r) == before
    reused = scan(api, tok, tube(1), resident(2), seq=2, op="s1")
    problem(reused, 422, "operation_reused")
    conflict = scan(api, tok, tube(1), resident(2), seq=2, op="s9")
    problem(conflict, 409, "seq_conflict")
    assert snapshot(r) == before


# -- batches -----------------------------------------------------------------------


def test_batch_results_gaps_and_replay(api: Api, tok: str, r: redis.Redis) -> None:
    ops = [
        op(1, "open", tube(1), capacity=5),
        op(2, "scan", tube(1), resident=resident(1)),
        op(5, "scan", tube(1), resident=resident(1)),
        op(6, "scan", tube(9), resident=resident(2)),
        op(7, "scan", tube(1), resident=resident(3)),
        op(9, "undo", tube(1), resident=resident(3)),
    ]
    resp = batch(api, tok, ops)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [(x["seq"], x["status"], x["count"]) for x in body["results"]] == [
        (1, "ok", 0),
        (2, "ok", 1),
        (5, "resident_already_sampled", 1),
        (6, "tube_not_found", 0),
        (7, "ok", 2),
        (9, "ok", 1),
    ]
    assert all(not x["replayed"] for x in body["results"])
    assert [x["message"] == "" for x in body["results"]] == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]
    assert tube(9) in body["results"][3]["message"]
    assert (body["applied"], body["refused"]) == (4, 2)
    assert body["gaps"] == [[3, 4], [8, 8]]

    before = snapshot(r)
    again = batch(api, tok, ops)
    assert again.status_code == 200
    body2 = again.json()
    assert body2["results"] == [{**x, "replayed": True} for x in body["results"]]
    assert (body2["applied"], body2["refused"], body2["gaps"]) == (4, 2, [[3, 4], [8, 8]])
    assert snapshot(r) == before

    # filling a gap later closes it
    late = batch(api, tok, [op(3, "scan", tube(1), resident=resident(4))]).json()
    assert late["results"][0]["status"] == "ok"
    assert late["gaps"] == [[4, 4], [8, 8]]


def test_batch_same_op_different_payload(api: Api, tok: str, r: redis.Redis) -> None:
    ops = [
        op(1, "open", tube(1), capacity=5),
        op(2, "scan", tube(1), resident=resident(1)),
    ]
    assert batch(api, tok, ops).status_code == 200
    before = snapshot(r)
    changed = [
        op(1, "open", tube(1), capacity=10),
        op(2, "scan", tube(1), resident=resident(2)),
        op(3, "scan", tube(1), resident=resident(3), op="b-2"),  # op id reused, new seq
    ]
    resp = batch(api, tok, changed)
    assert resp.status_code == 200, resp.text
    statuses = [x["status"] for x in resp.json()["results"]]
    assert statuses[:2] == ["operation_reused", "operation_reused"]
    assert all(x["message"] for x in resp.json()["results"][:2])
    # a new seq is a new operation: the op id is only matched at its own seq
    assert statuses[2] == "ok"
    after = snapshot(r)
    del after[keys.oplog("r1", "d1").encode()], before[keys.oplog("r1", "d1").encode()]
    changed_keys = {k for k in after if after[k] != before.get(k)}
    assert all(k.startswith(b"{rd:r1}:") for k in changed_keys)
    assert r.strlen(keys.oplog("r1", "d1")) == 24


def test_batch_applies_in_order_across_devices(api: Api, tok: str) -> None:
    d2 = api.device("d2", site="S1")
    a = batch(api, tok, [op(1, "open", tube(1), capacity=5)])
    assert a.json()["results"][0]["status"] == "ok"
    b = batch(
        api,
        d2,
        [
            op(1, "scan", tube(1), resident=resident(1)),
            op(2, "scan", tube(1), resident=resident(2)),
            op(3, "close", tube(1)),
        ],
    ).json()
    assert [x["status"] for x in b["results"]] == ["ok", "ok", "ok"]
    assert b["results"][2]["closed"] is True
    assert b["gaps"] == []


# -- docs --------------------------------------------------------------------------


def test_openapi_and_docs(api: Api) -> None:
    resp = api.client.get("/docs/openapi.json")
    assert resp.status_code == 200
    schema = resp.json()
    ops = {
        o["operationId"]
        for path in schema["paths"].values()
        for o in path.values()
        if isinstance(o, dict) and "operationId" in o
    }
    assert {"openTube", "scanResident", "undoScan", "closeTube", "uploadBatch", "readTube"} <= ops
    page = api.client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


# -- an open that is refused or not applied claims no tube -------------------------


def test_refused_open_claims_no_tube(api: Api, tok: str, r: redis.Redis) -> None:
    before = snapshot(r)
    problem(api.open(tok, tube(1), round_id="typo", capacity=5), 404, "round_not_found")
    assert snapshot(r) == before


def test_reused_open_claims_no_tube(api: Api, tok: str, r: redis.Redis) -> None:
    first = api.post("/v1/rounds/r1/tubes", tok, {"op": "o1", "seq": 1, "tube": tube(1)})
    assert first.status_code == 201
    before = snapshot(r)
    reused = api.post("/v1/rounds/r1/tubes", tok, {"op": "o1", "seq": 1, "tube": tube(2)})
    problem(reused, 422, "operation_reused")
    conflict = api.post("/v1/rounds/r1/tubes", tok, {"op": "o2", "seq": 1, "tube": tube(2)})
    problem(conflict, 409, "seq_conflict")
    assert snapshot(r) == before


def claim_table(r: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    """Every ever-opened claim hash (``sampling:tubes:<nnn>``), whole."""
    return {k: r.hgetall(k) for k in r.scan_iter(match=keys.tube_claim("T000000000000")[:-3] + "*")}


def opens_elsewhere(api: Api, code: str) -> None:
    """The barcode is not burnt: a scanner in another round can still open it."""
    api.round("r2")
    other = api.device(f"r2-{code}", site="S1")
    resp = api.post("/v1/rounds/r2/tubes", other, {"op": "again", "seq": 1, "tube": code})
    assert resp.status_code == 201, resp.text


def test_open_in_a_closed_round_burns_no_barcode(api: Api, tok: str, r: redis.Redis) -> None:
    """A handheld left on yesterday's closed round: its opens are refused and claim nothing."""
    assert api.post("/v1/rounds/r1/close", api.admin, {}).status_code == 200
    claims = claim_table(r)
    problem(api.open(tok, tube(1)), 409, "round_closed")
    body = batch(api, tok, [op(5, "open", tube(2)), op(6, "open", tube(3))]).json()
    assert [x["status"] for x in body["results"]] == ["round_closed", "round_closed"]
    assert claim_table(r) == claims
    assert not r.exists(keys.tube("r1", tube(1)))
    opens_elsewhere(api, tube(1))


def test_open_out_of_sequence_range_burns_no_barcode(api: Api, tok: str, r: redis.Redis) -> None:
    before = snapshot(r)
    far = api.post("/v1/rounds/r1/tubes", tok, {"op": "o1", "seq": 900_000, "tube": tube(1)})
    problem(far, 400, "seq_out_of_range")
    assert snapshot(r) == before
    # In a batch the range moves with the ops before it: seq 3 is in range, 20,004 is not.
    claims = claim_table(r)
    body = batch(api, tok, [op(3, "open", tube(2)), op(20_004, "open", tube(3))]).json()
    assert [x["status"] for x in body["results"]] == ["ok", "seq_out_of_range"]
    added = {f: v for h in claim_table(r).values() for f, v in h.items()}
    assert added == {
        **{f: v for h in claims.values() for f, v in h.items()},
        tube(2).encode(): b"r1",
    }
    opens_elsewhere(api, tube(3))


def test_revoked_token_cached_in_another_worker_burns_no_barcode(
    api: Api, tok: str, r: redis.Redis, settings: Settings
) -> None:
    from litestar.testing import TestClient

    from sampling.api.app import create_app

    with TestClient(app=create_app(settings)) as worker2:
        hdr = api.h(tok)
        # Worker 2 has the scanner's token in its cache ...
        assert worker2.get(f"/v1/rounds/r1/tubes/{tube(9)}", headers=hdr).status_code == 404
        resp = worker2.post(
            "/v1/rounds/r1/tubes", headers=hdr, json={"op": "o1", "seq": 1, "tube": tube(8)}
        )
        assert resp.status_code == 201, resp.text
        # ... when worker 1 revokes it.
        assert api.post("/v1/devices/d1/revoke", api.admin, {}).status_code == 200
        before = snapshot(r)
        resp = worker2.post(
            "/v1/rounds/r1/tubes", headers=hdr, json={"op": "o2", "seq": 2, "tube": tube(1)}
        )
        problem(resp, 401, "token_revoked")
        assert snapshot(r) == before
    opens_elsewhere(api, tube(1))


def test_open_of_a_tube_claimed_elsewhere_changes_no_claim(
    api: Api, tok: str, r: redis.Redis
) -> None:
    api.round("r2")
    other = api.device("d-r2", site="S1")
    assert (
        api.post("/v1/rounds/r2/tubes", other, {"op": "a", "seq": 1, "tube": tube(1)}).status_code
        == 201
    )
    assert api.open(tok, tube(2)).status_code == 201
    claims = claim_table(r)
    problem(api.open(tok, tube(1)), 409, "tube_used")  # another round's barcode
    problem(api.open(tok, tube(2)), 409, "tube_used")  # opened here already
    assert claim_table(r) == claims
