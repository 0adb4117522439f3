"""Hostile input: Schemathesis against the served OpenAPI schema (no 5xx, responses
conform), and bad requests change nothing in Redis, byte for byte."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from sampling import codes
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer
from tests.binding import snapshot
from tests.conftest import SECRET, Api, resident, tube

EXAMPLES = 8
_FULL = str.maketrans("0123456789", "０１２３４５６７８９")
BASE = "http://testserver.local"
#: What a rejected request may answer: bad input, auth, unknown, too large, unsupported.
REJECTED = {400, 401, 403, 404, 405, 413, 415, 422}


@pytest.fixture
def settings(server: EmbeddedServer, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=server.url, data_dir=tmp_path, secret_hex=SECRET, device_rate=1e6, max_batch=20
    )


@pytest.fixture
def world(api: Api) -> dict[str, str]:
    api.round()
    api.site("S1")
    scanner = api.device("d1", site="S1")
    assert api.open(scanner, tube(1), capacity=5).status_code == 201
    assert api.scan(scanner, tube(1), resident(1)).status_code == 200
    return {"admin": api.admin, "scanner": scanner}


def _operations(api: Api) -> list[Any]:
    raw = api.client.get("/docs/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    ops = [result.ok() for result in schema.get_all_operations()]
    return [op for op in ops if op.path.startswith("/v1")]


def _send(api: Api, case: Any, token: str) -> Any:
    kw = case.as_transport_kwargs(base_url=BASE, headers={"Authorization": f"Bearer {token}"})
    kw.pop("cookies", None)
    if "data" in kw and isinstance(kw["data"], bytes | str):
        kw["content"] = kw.pop("data")
    # Generated multipart "files" may be plain numbers: a real client sends their text.
    # (Left as they are, the in-process transport fails inside the app's receive()
    # and the client's own AttributeError would look like a server error.)
    if "files" in kw:
        # A generated multipart body a real client cannot encode (a number as a file)
        # never reaches a server; in process it would fail inside the app's receive()
        # and look like a server error, so such a case is not sent.
        try:
            httpx.Request(
                kw.get("method", "POST"), "http://x/", files=kw["files"], data=kw.get("data")
            ).read()
        except (AttributeError, TypeError):
            hypothesis.reject()
    return api.client.request(**kw), kw


#: Server errors found by this test and not yet fixed, each with the fix it needs (none now:
#: the multipart and Binder.close 500s it found are fixed). A 5xx anywhere else fails.
KNOWN: dict[str, str] = {}


def _server_errors(errors: list[str]) -> None:
    unknown = [e for e in errors if e.partition(" | ")[0] not in KNOWN]
    assert not unknown, unknown
    if errors:
        pytest.xfail("known server errors: " + "; ".join(sorted({e[:200] for e in errors})))


def _fuzz(
    api: Api, op: Any, mode: GenerationMode, token: str, seen: list[int], errors: list[str]
) -> None:
    @hypothesis.given(case=op.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        resp, kw = _send(api, case, token)
        seen.append(resp.status_code)
        if resp.status_code >= 500:
            errors.append(f"{op.method.upper()} {op.path} | {resp.status_code} {resp.text[:80]}")
            return
        if resp.status_code >= 400:
            # Errors are RFC 9457 documents; Litestar's generated schema documents its
            # automatic 400 as application/json, so their media type is checked here.
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert resp.json()["code"]
        if mode is GenerationMode.POSITIVE:
            checks = [not_a_server_error, response_schema_conformance]
            if resp.status_code < 400:
                checks.append(content_type_conformance)
            case.validate_response(resp, checks=checks, headers=kw.get("headers"))
        else:
            assert resp.status_code in REJECTED | {409}, (kw, resp.status_code, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")

    # Unsatisfiable: nothing in this operation can be made invalid (no body, free-form path).
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()


@pytest.mark.slow
def test_schemathesis_positive(api: Api, world: dict[str, str]) -> None:
    seen: list[int] = []
    errors: list[str] = []
    for op in _operations(api):
        _fuzz(api, op, GenerationMode.POSITIVE, world["admin"], seen, errors)
    assert len(seen) > 50
    _server_errors(errors)


@pytest.mark.slow
def test_schemathesis_negative_changes_nothing(
    api: Api, world: dict[str, str], r: redis.Redis
) -> None:
    before = snapshot(r)
    seen: list[int] = []
    errors: list[str] = []
    for token in (world["admin"], world["scanner"]):
        for op in _operations(api):
            if op.method.upper() == "GET":
                continue
            _fuzz(api, op, GenerationMode.NEGATIVE, token, seen, errors)
    assert len(seen) > 30
    assert snapshot(r) == before
    _server_errors(errors)


def _bad_requests(world: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    a, s = world["admin"], world["scanner"]
    scans = f"/v1/rounds/r1/tubes/{tube(1)}/scans"
    garbled = resident(2)[:-1] + ("0" if resident(2)[-1] != "0" else "1")
    op = {"op": "x", "seq": 5}

    def batch(ops: list[dict[str, Any]]) -> dict[str, Any]:
        return {"json": {"ops": ops}}

    good = {"op": "b", "seq": 7, "kind": "scan", "tube": tube(1), "resident": resident(3)}
    return [
        (s, scans, {"json": {**op, "resident": garbled}}),  # a misread: check character
        (s, scans, {"json": {**op, "resident": tube(3)}}),  # the wrong kind of code
        (s, scans, {"json": {**op, "resident": resident(2), "extra": 1}}),  # unknown field
        (s, scans, {"json": {"op": "x", "seq": 0, "resident": resident(2)}}),  # seq out of range
        (s, scans, {"json": {"op": "", "seq": 5, "resident": resident(2)}}),
        (s, scans, {"json": {"op": "x" * 65, "seq": 5, "resident": resident(2)}}),
        (s, scans, {"json": {**op, "resident": None}}),
        (s, scans, {"json": [1, 2, 3]}),
        (s, scans, {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        (s, scans, {"content": b"\xff\xfe\x00", "headers": {"content-type": "application/json"}}),
        (s, scans, {"json": {**op, "resident": "\u0000" * 30}}),
        (s, scans, {"json": {**op, "resident": "😀" * 40}}),
        (
            s,
            f"/v1/rounds/r1/tubes/{tube(1)[:-1]}9/scans",
            {"json": {**op, "resident": resident(2)}},
        ),
        (s, f"/v1/rounds/r1/tubes/{'T' * 400}/scans", {"json": {**op, "resident": resident(2)}}),
        (s, "/v1/rounds/r1/tubes", {"json": {**op, "tube": tube(4), "capacity": 7}}),
        (
            s,
            "/v1/rounds/r1/tubes",
            {"json": {**op, "tube": tube(4), "capacity": 5, "purpose": "resample"}},
        ),
        (s, "/v1/rounds/r1/batches", batch([])),
        (s, "/v1/rounds/r1/batches", batch([good] * 21)),  # over max_batch: 413
        (s, "/v1/rounds/r1/batches", batch([good, {**good, "seq": 6, "op": "c"}])),  # order
        (
            s,
            "/v1/rounds/r1/batches",
            batch([good, {**good, "seq": 8, "op": "c", "resident": garbled}]),
        ),  # one bad: none
        (s, "/v1/rounds/r1/batches", batch([{**good, "kind": "undo", "resident": None}])),
        (s, "/v1/rounds/r1/batches", batch([{**good, "kind": "explode"}])),
        (
            s,
            "/v1/rounds/r1/batches",
            {"content": b"x" * 2_100_000, "headers": {"content-type": "application/json"}},
        ),
        (s, scans, {"json": {"op": "x", "seq": "5", "resident": resident(2)}}),  # not a number
        (s, scans, {"json": {"op": "x\r\ny", "seq": 5, "resident": resident(2)}}),  # CR/LF op id
        (s, scans, {"json": {"op": "x\u0000", "seq": 5, "resident": resident(2)}}),  # NUL op id
        (s, scans, {"json": {**op, "resident": resident(2)[:5] + "²" + resident(2)[6:]}}),
        (s, scans, {"json": {**op, "resident": resident(2)[:-1].translate(_FULL) + "0"}}),
        (
            s,
            "/v1/rounds/r1/batches",
            {
                "content": b"[" * 50_000 + b"]" * 50_000,
                "headers": {"content-type": "application/json"},
            },
        ),  # nested too deep for the decoder
        (a, "/v1/rounds", {"json": {"id": "Bad Round!", "name": "x"}}),
        (a, "/v1/rounds", {"json": {"id": "r9", "name": "x", "pool": "ten"}}),
        (a, "/v1/devices", {"json": {"id": "d9", "role": "root"}}),
        (a, "/v1/devices", {"json": {"id": "../../etc", "role": "scanner"}}),
        (
            a,
            "/v1/sites",
            {"json": {"id": "S9", "name": "x" * 201, "street": "s", "community": "c", "grid": "g"}},
        ),
        (s, "/v1/devices", {"json": {"id": "d9", "role": "admin"}}),  # escalation: 403
        ("bogus.token", "/v1/rounds/r1/tubes", {"json": {**op, "tube": tube(4)}}),
        (a, "/v1/rounds/r1/risk", {"json": {"residents": [{"resident": garbled, "flags": "Y"}]}}),
        (
            a,
            "/v1/rounds/r1/risk",
            {"json": {"residents": [{"resident": resident(2), "flags": "Z"}]}},
        ),
        (s, f"/v1/rounds/r1/boxes/{codes.make_box(1)}/tubes", {"json": {**op, "tube": tube(1)}}),
    ]


def test_rejected_requests_change_nothing(api: Api, world: dict[str, str], r: redis.Redis) -> None:
    before = snapshot(r)
    for token, path, kw in _bad_requests(world):
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        method = "PUT" if path.endswith("/risk") else "POST"
        resp = api.client.request(method, path, headers=headers, **kw)
        assert resp.status_code in REJECTED, (path, json.dumps(kw)[:200], resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.json()["code"]
    assert snapshot(r) == before


def _claims(r: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    """The ever-opened claim table (``sampling:tubes:<nnn>``), outside every round's slot."""
    return {k: r.hgetall(k) for k in r.scan_iter(match="sampling:tubes:*")}


def test_refused_opens_leave_the_claim_table_alone(
    api: Api, world: dict[str, str], r: redis.Redis, settings: Settings
) -> None:
    """Every way the round's step can refuse an open: none takes or keeps a claim.

    (Refusals by the round's step keep their op record so a retry answers the
    same; the claim table, which every other round reads, must not move.)
    """
    from litestar.testing import TestClient

    from sampling.api.app import create_app

    a, s = world["admin"], world["scanner"]
    api.round("old")
    old = api.device("d-old", site="S1")
    assert api.post("/v1/rounds/old/close", a, {}).status_code == 200
    api.round("r2")
    r2 = api.device("d-r2", site="S1")
    assert api.open(r2, tube(6), round_id="r2").status_code == 201
    doomed = api.device("d-doomed", site="S1")
    claims = _claims(r)
    fresh = tube(5)

    def post(token: str, path: str, body: dict[str, Any]) -> Any:
        return api.post(path, token, body)

    cases: list[tuple[str, str, str, dict[str, Any], int, str]] = [
        (
            "unknown round",
            s,
            "/v1/rounds/nope/tubes",
            {"op": "u", "seq": 9},
            404,
            "round_not_found",
        ),
        ("closed round", old, "/v1/rounds/old/tubes", {"op": "c", "seq": 1}, 409, "round_closed"),
        (
            "seq too far",
            s,
            "/v1/rounds/r1/tubes",
            {"op": "f", "seq": 50_000},
            400,
            "seq_out_of_range",
        ),
        ("op reused", s, "/v1/rounds/r1/tubes", {"op": "op-1", "seq": 1}, 422, "operation_reused"),
        ("seq reused", s, "/v1/rounds/r1/tubes", {"op": "zz", "seq": 1}, 409, "seq_conflict"),
    ]
    for name, token, path, body, status, code in cases:
        resp = post(token, path, {**body, "tube": fresh})
        assert (resp.status_code, resp.json()["code"]) == (status, code), (name, resp.text)
        assert _claims(r) == claims, name
    # A batch of opens refused each for its own reason, and one accepted.
    ops = [
        {"op": "b1", "seq": 3, "kind": "open", "tube": tube(6)},  # another round's barcode
        {"op": "b2", "seq": 4, "kind": "open", "tube": tube(1)},  # opened here already
        {"op": "b3", "seq": 40_000, "kind": "open", "tube": fresh},  # out of range
    ]
    body = api.post("/v1/rounds/r1/batches", s, {"ops": ops}).json()
    assert [x["status"] for x in body["results"]] == ["tube_used", "tube_used", "seq_out_of_range"]
    assert _claims(r) == claims
    # A revoked token still cached by another worker.
    with TestClient(app=create_app(settings)) as worker2:
        hdr = {"Authorization": f"Bearer {doomed}"}
        assert worker2.get("/v1/whoami", headers=hdr).status_code == 200
        assert api.post("/v1/devices/d-doomed/revoke", a, {}).status_code == 200
        resp = worker2.post(
            "/v1/rounds/r1/tubes", headers=hdr, json={"op": "v", "seq": 1, "tube": fresh}
        )
        # Refused by the round's step (the cache let it through), not by the cache.
        assert (resp.status_code, resp.json()["code"]) == (401, "token_revoked"), resp.text
    assert _claims(r) == claims
    # The barcode is still whole: the first round that accepts it gets it.
    assert api.open(r2, fresh, round_id="r2").status_code == 201


# -- no 500 from any body or path (issue 11, point 5): one test per defect found ---------


def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["code"] == code, body
    return body


@pytest.mark.parametrize("shape", ["array", "object"])
def test_json_nested_100000_deep_is_a_400(
    api: Api, world: dict[str, str], r: redis.Redis, shape: str
) -> None:
    """Found against main: a 500 (RecursionError inside the JSON decoder)."""
    n = 100_000
    deep = b"[" * n + b"]" * n if shape == "array" else b'{"a":' * n + b"1" + b"}" * n
    before = snapshot(r)
    for path in (f"/v1/rounds/r1/tubes/{tube(1)}/scans", "/v1/rounds/r1/batches", "/v1/rounds"):
        token = world["admin"] if path == "/v1/rounds" else world["scanner"]
        headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
        resp = api.client.post(path, content=deep, headers=headers)
        body = _problem(resp, 400, "body_too_deep")
        assert " " in body["detail"]
    assert snapshot(r) == before


@pytest.mark.parametrize(
    "body",
    [
        {"op": "x", "seq": "5", "resident": resident(2)},
        {"op": "x", "seq": 5.0, "resident": resident(2)},
        {"op": "x", "seq": True, "resident": resident(2)},
    ],
)
def test_numbers_must_be_json_numbers(
    api: Api, world: dict[str, str], r: redis.Redis, body: dict[str, Any]
) -> None:
    """Found against main: ``"seq": "5"`` was taken as the number 5."""
    before = snapshot(r)
    resp = api.post(f"/v1/rounds/r1/tubes/{tube(1)}/scans", world["scanner"], body)
    got = _problem(resp, 400, "invalid_request")
    assert "seq" in got["detail"]
    resp = api.post(
        "/v1/rounds/r1/tubes",
        world["scanner"],
        {"op": "o", "seq": 9, "tube": tube(2), "capacity": "5"},
    )
    _problem(resp, 400, "invalid_request")
    assert snapshot(r) == before


@pytest.mark.parametrize("op_id", ["a\x00b", "a\r\nk: forged", "a\nb", "\x1b[31m", "é", " lead"])
def test_op_ids_are_printable_ascii(
    api: Api, world: dict[str, str], r: redis.Redis, op_id: str
) -> None:
    """Found against main: op ids with NUL/CR/LF were accepted and went into the journal."""
    before = snapshot(r)
    resp = api.post(
        f"/v1/rounds/r1/tubes/{tube(1)}/scans",
        world["scanner"],
        {"op": op_id, "seq": 9, "resident": resident(2)},
    )
    _problem(resp, 400, "invalid_request")
    assert snapshot(r) == before
    fine = api.post(
        f"/v1/rounds/r1/tubes/{tube(1)}/scans",
        world["scanner"],
        {"op": "uuid-7f3a 2024/05:01~", "seq": 9, "resident": resident(2)},
    )
    assert fine.status_code == 200, fine.text


def test_a_batch_refusal_names_the_op(api: Api, world: dict[str, str], r: redis.Redis) -> None:
    """Found against main: one garbled op refused the batch with a 400 naming no op."""
    s = world["scanner"]
    garbled = resident(3)[:-1] + ("0" if resident(3)[-1] != "0" else "1")
    ops: list[dict[str, Any]] = [
        {"op": "b1", "seq": 20, "kind": "scan", "tube": tube(1), "resident": resident(4)},
        {"op": "b2", "seq": 21, "kind": "scan", "tube": tube(1), "resident": resident(5)},
        {"op": "b3", "seq": 22, "kind": "scan", "tube": tube(1), "resident": garbled},
    ]
    before = snapshot(r)
    body = _problem(api.post("/v1/rounds/r1/batches", s, {"ops": ops}), 400, "garbled_code")
    assert (body["index"], body["seq"], body["op"]) == (2, 22, "b3")
    assert "ops[2] (seq 22" in body["detail"]
    # A value of the wrong type, found by the schema: the same fields.
    ops[1] = {**ops[1], "seq": "21"}
    body = _problem(api.post("/v1/rounds/r1/batches", s, {"ops": ops}), 400, "invalid_request")
    assert body["index"] == 1 and "ops[1]" in body["detail"]
    ops[1] = {**ops[1], "seq": 21, "op": "bad\nid"}
    body = _problem(api.post("/v1/rounds/r1/batches", s, {"ops": ops}), 400, "invalid_request")
    assert (body["index"], body["seq"]) == (1, 21)
    assert "ops[1] (seq 21)" in body["detail"]
    assert snapshot(r) == before


@pytest.fixture
def archived(api: Api, settings: Settings) -> None:
    from sampling.lab import synth

    synth.write(synth.generate(500, seed=3), settings.data_dir, "r1")


@pytest.mark.parametrize(
    "grid",
    ["G1\r\nSet-Cookie: x=1", 'G"1', "G1\x00", "网格1", "G1;a=b\\", "G1 ..\\x"],
)
def test_grid_names_make_safe_download_names(
    api: Api, world: dict[str, str], archived: None, grid: str
) -> None:
    """Found against main: a grid name with CR/LF or a quote dropped the connection
    (it went into Content-Disposition as it was)."""
    from urllib.parse import quote, unquote

    for fmt in ("csv", "xlsx"):
        resp = api.get(f"/v1/rounds/r1/doors/{quote(grid, safe='')}?format={fmt}", world["admin"])
        assert resp.status_code == 200, resp.text
        value = resp.headers["content-disposition"]
        assert "\r" not in value and "\n" not in value and "set-cookie" not in resp.headers
        plain, _, star = value.partition("; filename*=UTF-8''")
        assert plain.count('"') == 2 and plain.isascii()
        assert unquote(star) == f"doors-r1-{grid}.{fmt}"


def test_not_found_texts_show_no_server_path(
    api: Api, world: dict[str, str], settings: Settings, archived: None
) -> None:
    """Found against main: the 404 for a round `..` showed the absolute data directory."""
    secret = str(settings.data_dir)
    for rid in ("..", "%2E%2E", "nope", "r2", "a%2Fb", "..%2F..%2Fetc"):
        for sub in ("reconciliation", "reports/state_counts", "doors/G0001"):
            resp = api.get(f"/v1/rounds/{rid}/{sub}", world["admin"])
            assert resp.status_code in (400, 404), (rid, sub, resp.text)
            assert secret not in resp.text and "/tmp" not in resp.text, (rid, sub, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")


def test_result_dates_outside_the_round_are_refused(
    api: Api, world: dict[str, str], r: redis.Redis
) -> None:
    """Found against main: a ``tested_at`` of year 1 was a 500; a date years before the
    round (or in the future) was stored."""
    lab = api.device("lab9", role="lab", lab="L1")
    before = snapshot(r)
    dates = [
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+08:00",
        "9999-12-31T23:59:59",
        "1970-01-01T00:00:00Z",
        "2020-03-01T09:00:00+08:00",  # plausible once, but before this round began
        "2099-01-01T00:00:00Z",
    ]
    rows = [{"tube": tube(1), "outcome": "negative", "tested_at": d} for d in dates]
    resp = api.post("/v1/rounds/r1/results", lab, {"results": rows})
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert (got["refused"], got["accepted"]) == (len(dates), 0)
    assert all(x["status"] == "refused" and "time" in x["reason"] for x in got["rows"])
    csv = "tube,outcome,tested_at\n" + "".join(
        f"{tube(1)},negative,{d}\n" for d in ("00010101", "20221345", "99991231", "0001-01-01")
    )
    headers = {**api.h(lab), "content-type": "text/csv"}
    resp = api.client.post("/v1/rounds/r1/results/file", content=csv.encode(), headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["refused"] == 4
    assert snapshot(r) == before
