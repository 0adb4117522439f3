"""Look-alike digits through the API: refused as garbled, never a second binding or a 500.

Found against main: with full-width digits and an ASCII check character, one
resident was bound three times into one tube, one tube barcode opened three
times and one box opened twice, and a superscript ``²`` was a 500.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from sampling import codes
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer
from tests.binding import snapshot
from tests.boxing.field import Field, problem
from tests.conftest import SECRET, Api, resident, tube

FULL = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def lookalike(code: str, table: dict[int, int]) -> str:
    """Every digit but the check character in another script: ``int()`` reads the same."""
    return code[:-1].translate(table) + code[-1]


@pytest.fixture
def settings(server: EmbeddedServer, tmp_path: Path) -> Settings:
    return Settings(redis_url=server.url, data_dir=tmp_path, secret_hex=SECRET, device_rate=1e6)


@pytest.fixture
def f(api: Api) -> Field:
    return Field(api)


def test_one_resident_is_not_bound_three_times_into_one_tube(f: Field) -> None:
    tok = f.scanner["S1"]
    code = tube(77)
    assert f.api.open(tok, code).status_code == 201
    person = resident(7)
    assert f.api.scan(tok, code, person).status_code == 200
    for table in (FULL, ARABIC):
        body = problem(f.api.scan(tok, code, lookalike(person, table)), 400, "garbled_code")
        assert body["field"] == "resident"
        assert body.get("candidates", []) == []
    got = f.get(f"/tubes/{code}").json()
    assert got["count"] == 1


def test_one_tube_barcode_is_not_opened_three_times(f: Field, r: redis.Redis) -> None:
    tok = f.scanner["S1"]
    code = tube(78)
    assert f.api.open(tok, code).status_code == 201
    before = snapshot(r)
    for table in (FULL, ARABIC):
        body = problem(f.api.open(tok, lookalike(code, table)), 400, "garbled_code")
        assert body["field"] == "tube"
    assert snapshot(r) == before


def test_one_box_is_not_opened_twice(f: Field, r: redis.Redis) -> None:
    box = codes.make_box(31)
    assert f.open(box).status_code == 201
    before = snapshot(r)
    problem(f.open(lookalike(box, FULL)), 400, "garbled_code")
    assert snapshot(r) == before


def test_codes_check_does_not_accept_lookalikes(f: Field) -> None:
    for code in (tube(5), resident(5), codes.make_box(5)):
        for table in (FULL, ARABIC):
            resp = f.api.post("/v1/codes/check", f.scanner["S1"], {"code": lookalike(code, table)})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["accepted"] is False
            assert body["reason"] == "bad_characters"
            assert all(c.isascii() for c in body["candidates"])


def test_superscript_is_a_400_on_every_code_route(f: Field, r: redis.Redis) -> None:
    t = f.tube(n=1)
    box = codes.make_box(32)
    assert f.open(box).status_code == 201
    bad_tube = t[:-2] + "²" + t[-1]
    bad_box = box[:-2] + "²" + box[-1]
    bad_res = resident(3)[:-2] + "²" + resident(3)[-1]
    s1, sealer, lab, admin = f.scanner["S1"], f.sealer, f.lab, f.api.admin
    op = {"op": "sup", "seq": 900}
    before = snapshot(r)
    posts = [
        (s1, "/tubes", {**op, "tube": bad_tube}),
        (s1, f"/tubes/{bad_tube}/scans", {**op, "resident": resident(3)}),
        (s1, f"/tubes/{t}/scans", {**op, "resident": bad_res}),
        (s1, f"/tubes/{bad_tube}/undo", {**op}),
        (s1, f"/tubes/{bad_tube}/close", {**op}),
        (s1, "/batches", {"ops": [{**op, "kind": "scan", "tube": t, "resident": bad_res}]}),
        (sealer, "/boxes", {**op, "box": bad_box}),
        (sealer, f"/boxes/{box}/tubes", {**op, "tube": bad_tube}),
        (sealer, f"/boxes/{bad_box}/tubes", {**op, "tube": t}),
        (lab, f"/boxes/{bad_box}/receive", {**op}),
    ]
    for token, path, body in posts:
        resp = f.api.post(f"/v1/rounds/r1{path}", token, body)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["code"] == "garbled_code", (path, resp.text)
    gets = [f"/tubes/{bad_tube}", f"/boxes/{bad_box}", f"/timeline/{bad_tube}"]
    for path in gets:
        resp = f.get(path, admin)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["code"] == "garbled_code", (path, resp.text)
    resp = f.api.client.put(
        "/v1/rounds/r1/risk",
        json={"residents": [{"resident": bad_res, "flags": "Y"}]},
        headers=f.api.h(admin),
    )
    assert resp.status_code == 400, resp.text
    assert snapshot(r) == before
