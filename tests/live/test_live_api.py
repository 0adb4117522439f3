"""GET /v1/rounds/{round}/live: each figure against a round built through the API."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sampling.live.models import Live
from tests.boxing.field import Field, new_box, problem
from tests.conftest import Api, resident, tube

AT = "2022-05-01T14:03:00+08:00"


@pytest.fixture
def f(api: Api) -> Field:
    return Field(api)


def live(f: Field, token: str | None = None) -> dict:
    resp = f.get("/live", token)
    assert resp.status_code == 200, resp.text
    body: dict = resp.json()
    return body


def test_roles_and_unknown_round(f: Field) -> None:
    assert live(f, f.viewer)["round"] == "r1"
    grid = f.api.device("grid-G1", role="grid", grid="G1")
    problem(f.get("/live", grid), 403, "forbidden")
    problem(f.get("/live", f.scanner["S1"]), 403, "forbidden")
    problem(f.api.get("/v1/rounds/nope/live", f.api.admin), 404, "not_found")


def test_fields_of_an_empty_round(f: Field) -> None:
    body = live(f)
    assert list(body) == [
        "round", "as_of", "archived_at", "residents", "scans_per_minute", "tubes", "boxes",
        "results", "positives", "overdue", "devices", "coverage", "alarms",
    ]  # fmt: skip
    assert body["archived_at"] is None
    assert len(body["scans_per_minute"]) == 60
    assert all(m["scans"] == 0 for m in body["scans_per_minute"])
    assert set(body["tubes"].values()) == {0}


def _row(t: str, outcome: str) -> dict[str, Any]:
    ct = {"ct_orf1ab": 24.5, "ct_n": 26.0} if outcome == "positive" else {}
    return {"tube": t, "outcome": outcome, "tested_at": AT, **ct}


def _results(f: Field, rows: list[tuple[str, str]]) -> None:
    body = {"results": [_row(t, o) for t, o in rows]}
    resp = f.api.post(f"/v1/rounds/{f.round}/results", f.lab, body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["stored"] == len(rows), resp.text


def _alarms(body: dict) -> dict[tuple[str, str], str]:
    return {(a["kind"], a["subject"]): a["detail"] for a in body["alarms"]}


def test_figures_follow_the_round(f: Field) -> None:
    f.tube(n=2, close=False)
    t_a, t_b = f.tube(n=3), f.tube(n=3)
    box1 = new_box()
    assert f.open(box1).status_code == 201
    assert f.add(box1, t_a).status_code == 200
    problem(f.seal(box1, 2, 3), 409, "tube_count_mismatch")
    box2, (t_c, t_d) = f.delivered(tubes=2, n=3)
    assert f.intake(box2, t_c).status_code == 200
    assert f.intake(box2, t_d, condition="damaged").status_code == 200
    assert f.close_intake(box2).status_code == 200
    _results(f, [(t_c, "positive")])

    body = live(f, f.viewer)
    assert body["residents"]["sampled"] == 2 + 3 + 3 + 6
    assert sum(m["scans"] for m in body["scans_per_minute"]) == 14
    assert body["tubes"] == {
        "open": 1, "closed_unboxed": 1, "boxed": 1, "sealed": 0, "in_transit": 0,
        "received": 1, "resulted": 1,
    }  # fmt: skip
    assert body["boxes"] == {
        "open": 1, "sealed": 0, "picked_up": 0, "received": 0, "intake_closed": 1,
    }  # fmt: skip
    assert body["results"] == {"negative": 0, "positive": 1, "invalid": 0}
    assert body["positives"] == {"pools": 1, "orders": {"open": 3, "sampled": 0, "resulted": 0}}
    alarms = _alarms(body)
    assert alarms[("seal_refused", box1)] == "tube_count_mismatch"
    assert alarms[("intake_discrepancy", box2)] == "missing 0, extra 0, damaged 1"
    assert ("positive_pool", t_c) in alarms
    # Devices that did something: the scanner, the sealer, the courier, the lab desk.
    assert body["devices"] == {"active": 4, "silent": [], "gaps": []}
    assert [(o["stage"], o["count"]) for o in body["overdue"]] == [
        ("unboxed", 0), ("sealed", 0), ("transit", 0), ("intake", 0), ("result", 0),
    ]  # fmt: skip

    # The refused box sealed after all: its alarm goes, its tubes move on.
    assert f.add(box1, t_b).status_code == 200
    assert f.seal(box1, 2, 6).status_code == 200
    body = live(f)
    assert ("seal_refused", box1) not in _alarms(body)
    assert body["tubes"]["closed_unboxed"] == 0
    assert body["tubes"]["boxed"] == 0
    assert body["tubes"]["sealed"] == 2
    assert body["boxes"]["open"] == 0
    assert body["boxes"]["sealed"] == 1


def test_overdue_and_silent_devices_later(f: Field) -> None:
    t_a = f.tube(n=2)
    box, (t_c, t_d) = f.delivered(tubes=2, n=1)
    assert f.intake(box, t_c).status_code == 200
    assert f.intake(box, t_d).status_code == 200
    _results(f, [(t_c, "negative")])
    services = f.api.client.app.state.services

    async def later() -> Live:
        return await services.live.figures("r1", now=time.time() + 5 * 3600)

    body = f.api.client.blocking_portal.call(later)  # type: ignore[union-attr]
    overdue = {o.stage: o for o in body.overdue}
    assert overdue["unboxed"].count == 1
    assert 5 * 3600 - 60 < overdue["unboxed"].oldest_s < 5 * 3600 + 60
    assert overdue["result"].count == 1  # t_d: received, no result
    assert overdue["intake"].count == 1  # the box's intake is still open
    kinds = {(a.kind, a.subject) for a in body.alarms}
    assert ("overdue_tube", t_a) in kinds
    assert ("no_result", t_d) in kinds
    assert ("no_result", t_c) not in kinds
    assert ("overdue_box", box) in kinds
    assert body.devices.active == 0
    silent = {d.device: d.site for d in body.devices.silent}
    assert silent == {"scan-S1": "S1", "seal-S1": "S1", "courier1": "", "lab-A": "LA"}
    assert {a.subject for a in body.alarms if a.kind == "silent_device"} == set(silent)


def test_sequence_gaps(f: Field) -> None:
    tok = f.scanner["S2"]
    resp = f.api.post("/v1/rounds/r1/tubes", tok, {"op": "a3", "seq": 3, "tube": tube(801)})
    assert resp.status_code == 201, resp.text
    body = live(f)
    assert body["devices"]["gaps"] == [{"device": "scan-S2", "site": "S2", "missing": 2}]
    assert _alarms(body)[("device_gap", "scan-S2")] == "2 sequence numbers missing"
    resp = f.api.post("/v1/rounds/r1/tubes", tok, {"op": "a1", "seq": 1, "tube": tube(802)})
    assert resp.status_code == 201, resp.text
    assert live(f)["devices"]["gaps"] == [{"device": "scan-S2", "site": "S2", "missing": 1}]
    resp = f.api.post("/v1/rounds/r1/tubes", tok, {"op": "a2", "seq": 2, "tube": tube(803)})
    assert resp.status_code == 201, resp.text
    assert live(f)["devices"]["gaps"] == []


def test_resample_orders(api: Api) -> None:
    api.round()
    api.site("S1")
    scanner = api.device("hh", site="S1")
    lab = api.device("lab-A", role="lab", lab="LA")
    assert api.open(scanner, tube(1)).status_code == 201
    for n in range(4):
        assert api.scan(scanner, tube(1), resident(n)).status_code == 200
    assert api.open(scanner, tube(2)).status_code == 201
    assert api.scan(scanner, tube(2), resident(10)).status_code == 200
    rows = [
        _row(tube(1), "positive"),
        _row(tube(2), "invalid"),
    ]
    assert api.post("/v1/rounds/r1/results", lab, {"results": rows}).status_code == 200
    body = api.get("/v1/rounds/r1/live", api.admin).json()
    assert body["positives"] == {"pools": 1, "orders": {"open": 5, "sampled": 0, "resulted": 0}}
    # Two of the positive pool's residents re-sampled alone; one has its result.
    for n, t in ((0, 3), (1, 4)):
        assert api.open(scanner, tube(t), capacity=1, purpose="resample").status_code == 201
        assert api.scan(scanner, tube(t), resident(n)).status_code == 200
    rows = [_row(tube(3), "negative")]
    assert api.post("/v1/rounds/r1/results", lab, {"results": rows}).status_code == 200
    body = api.get("/v1/rounds/r1/live", api.admin).json()
    assert body["positives"]["orders"] == {"open": 3, "sampled": 1, "resulted": 1}
    assert body["residents"]["sampled"] == 5  # re-samples are not counted twice
    assert body["results"] == {"negative": 1, "positive": 1, "invalid": 1}


def test_gaps_within_offline_batches(f: Field) -> None:
    tok = f.scanner["S2"]

    def batch(seqs: list[int]) -> None:
        ops = [{"op": f"b{s}", "seq": s, "kind": "open", "tube": tube(900 + s)} for s in seqs]
        resp = f.api.post("/v1/rounds/r1/batches", tok, {"ops": ops})
        assert resp.status_code == 200, resp.text
        assert resp.json()["refused"] == 0

    batch([1, 5, 6])
    assert live(f)["devices"]["gaps"] == [{"device": "scan-S2", "site": "S2", "missing": 3}]
    batch([2, 3, 9])  # two filled, two more left out
    assert live(f)["devices"]["gaps"] == [{"device": "scan-S2", "site": "S2", "missing": 3}]
    batch([4, 7, 8])
    assert live(f)["devices"]["gaps"] == []
    # A replayed batch changes nothing.
    batch([4, 7, 8])
    assert live(f)["devices"]["gaps"] == []
