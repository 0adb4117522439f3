"""Boxing and custody through the HTTP API: every refusal, roles, retries, reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from sampling.boxing import keys
from sampling.settings import Settings
from tests.boxing.field import NEVER_BOUND, Field, new_box, problem
from tests.conftest import Api, Store

pytestmark = pytest.mark.cluster_too

CAPACITY = 3


@pytest.fixture
def settings(store: Store, tmp_path: Path) -> Settings:
    return store.settings(tmp_path, device_rate=100_000.0, box_capacity=CAPACITY)


@pytest.fixture
def f(api: Api) -> Field:
    return Field(api)


# -- the sealer's box -------------------------------------------------------------------


def test_open_add_remove_seal(f: Field) -> None:
    box = new_box()
    got = f.open(box)
    assert got.status_code == 201
    assert got.json()["state"] == "open"
    t1, t2 = f.tube(n=3), f.tube(n=2)
    assert f.add(box, t1).json()["samples"] == 3
    body = f.add(box, t2).json()
    assert (body["tubes"], body["samples"]) == (2, 5)
    assert f.get(f"/tubes/{t1}").json()["state"] == "boxed"
    gone = f.remove(box, t2, "label smudged")
    assert (gone.json()["tubes"], gone.json()["samples"]) == (1, 3)
    assert f.get(f"/tubes/{t2}").json()["state"] == "closed"
    sealed = f.seal(box, 1, 3, lab="LA")
    assert sealed.status_code == 200, sealed.text
    assert sealed.json()["state"] == "sealed"
    view = f.get(f"/boxes/{box}").json()
    assert view["lab"] == "LA" and view["sealed_by"] == "seal-S1"
    assert [c["tube"] for c in view["contents"]] == [t1]


def test_box_code_used_once_ever(f: Field) -> None:
    box = new_box()
    assert f.open(box).status_code == 201
    problem(f.open(box), 409, "box_used")
    f.api.round("r2")
    other = f.api.post("/v1/rounds/r2/boxes", f.sealer, {"op": "x1", "seq": 1, "box": box})
    problem(other, 409, "box_used")


def test_open_refusals(f: Field) -> None:
    problem(
        f.api.post("/v1/rounds/nope/boxes", f.sealer, {"op": "a", "seq": 1, "box": new_box()}),
        404,
        "not_found",
    )
    problem(f.open("B0000000001"), 400, "garbled_code")
    problem(f.open("T000000000000"), 400, "bad_input")


def test_add_refusals(f: Field) -> None:
    box = new_box()
    f.open(box)
    problem(f.add(new_box(), f.tube()), 404, "box_not_found")
    problem(f.add(box, f.tube(), token=f.sealer2), 403, "box_other_site")
    problem(f.add(box, NEVER_BOUND), 404, "tube_not_found")
    problem(f.add(box, f.tube(site="S2")), 403, "tube_other_site")
    still_open = f.tube(close=False)
    body = problem(f.add(box, still_open), 409, "tube_open")
    assert "still open (3 samples)" in body["detail"]
    t = f.tube()
    f.add(box, t)
    body = problem(f.add(box, t), 409, "tube_in_box")
    assert box in body["detail"]
    other = new_box()
    f.open(other)
    problem(f.add(other, t), 409, "tube_in_box")
    f.add(box, f.tube())
    f.add(box, f.tube())
    body = problem(f.add(box, f.tube()), 409, "box_full")
    assert f"({CAPACITY} tubes)" in body["detail"]
    problem(f.add(box, "T00000000001"), 400, "garbled_code")


def test_remove_refusals(f: Field) -> None:
    box = new_box()
    f.open(box)
    t = f.tube()
    problem(f.remove(box, t), 409, "tube_not_in_box")
    problem(f.remove(new_box(), t), 404, "box_not_found")
    f.add(box, t)
    problem(f.remove(box, t, token=f.sealer2), 403, "box_other_site")
    problem(f.remove(box, t, reason=""), 400, "invalid_request")
    f.seal(box, 1, 3, lab="LA")
    problem(f.remove(box, t), 409, "box_sealed")


def test_seal_refusals_say_what_disagrees(f: Field) -> None:
    box = new_box()
    f.open(box)
    problem(f.seal(box, 0, 0), 409, "box_empty")
    f.add(box, f.tube(n=3))
    f.add(box, f.tube(n=4))
    body = problem(f.seal(box, 3, 7), 409, "tube_count_mismatch")
    assert "Counted 3 tubes, but 2 were scanned" in body["detail"]
    assert (body["tubes"], body["samples"]) == (2, 7)
    body = problem(f.seal(box, 3, 6), 409, "tube_count_mismatch")
    assert "6 samples counted against 7 bound" in body["detail"]
    body = problem(f.seal(box, 2, 6), 409, "sample_count_mismatch")
    assert "Counted 6 samples, but the 2 tubes scanned into box" in body["detail"]
    assert "hold 7" in body["detail"]
    problem(f.seal(new_box(), 1, 1), 404, "box_not_found")
    problem(f.seal(box, 2, 7, token=f.sealer2), 403, "box_other_site")
    assert f.seal(box, 2, 7).status_code == 200
    body = problem(f.seal(box, 2, 7), 409, "box_sealed")
    problem(f.add(box, f.tube()), 409, "box_sealed")
    problem(f.seal(box, -1, 7), 400, "invalid_request")


def test_sealed_box_never_changes(f: Field) -> None:
    box, inside = f.sealed_box()
    before = f.get(f"/boxes/{box}").json()
    problem(f.add(box, f.tube()), 409, "box_sealed")
    problem(f.remove(box, inside[0]), 409, "box_sealed")
    problem(f.seal(box, 1, 3), 409, "box_sealed")
    # the binding core refuses to touch a boxed tube
    seq = f.api.next_seq(f.scanner["S1"])
    resp = f.api.post(
        f"/v1/rounds/r1/tubes/{inside[0]}/undo", f.scanner["S1"], {"op": f"u{seq}", "seq": seq}
    )
    problem(resp, 409, "tube_boxed")
    assert f.get(f"/boxes/{box}").json() == before


# -- handover and pick-up ------------------------------------------------------------------


def test_handover_and_pickup(f: Field) -> None:
    box, _ = f.sealed_box(lab="")
    problem(f.handover(box), 409, "box_no_lab")
    assert f.handover(box, lab="LB").status_code == 200
    problem(f.handover(box, lab="LB"), 409, "box_already_handed_over")
    got = f.pickup(box)
    assert got.status_code == 200 and got.json()["state"] == "picked_up"
    view = f.get(f"/boxes/{box}").json()
    assert view["lab"] == "LB"
    assert view["courier"] == "courier1" and view["handed_by"] == "seal-S1"
    assert view["pickup_place"] == "S1 gate" and view["picked_up_at"] >= view["handed_at"]
    problem(f.pickup(box), 409, "box_already_picked_up")
    problem(f.handover(box), 409, "box_already_picked_up")


def test_handover_refusals(f: Field) -> None:
    box = new_box()
    f.open(box)
    f.add(box, f.tube())
    problem(f.handover(box), 409, "box_not_sealed")
    problem(f.pickup(box), 409, "box_not_sealed")
    problem(f.handover(new_box()), 404, "box_not_found")
    problem(f.pickup(new_box()), 404, "box_not_found")
    f.seal(box, 1, 3, lab="LA")
    problem(f.handover(box, token=f.sealer2), 403, "box_other_site")
    body = problem(f.handover(box, lab="LB"), 409, "lab_mismatch")
    assert "addressed to lab LA, not LB" in body["detail"]
    problem(f.pickup(box), 409, "box_not_handed_over")
    assert f.handover(box, courier="courier2").status_code == 200
    body = problem(f.pickup(box), 403, "courier_mismatch")
    assert "courier2" in body["detail"]
    assert f.pickup(box, token=f.courier2).status_code == 200


# -- the lab desk --------------------------------------------------------------------------


def test_receive_refusals_and_wrong_lab(f: Field) -> None:
    box, _ = f.sealed_box()
    problem(f.receive(box), 409, "box_not_picked_up")
    problem(f.receive(new_box()), 404, "box_not_found")
    f.handover(box)
    f.pickup(box)
    body = problem(f.receive(box, token=f.lab_b), 403, "wrong_lab")
    assert "addressed to lab LA, not this lab (LB)" in body["detail"]
    problem(f.intake(box, f.tube()), 409, "box_not_received")
    problem(f.close_intake(box), 409, "box_not_received")
    assert f.receive(box).json()["state"] == "received"
    problem(f.receive(box), 409, "box_already_received")
    problem(f.intake(box, f.tube(), token=f.lab_b), 403, "wrong_lab")


def test_intake_discrepancies(f: Field, r: redis.Redis) -> None:
    box, (t1, t2, t3) = f.delivered(tubes=3, n=2)
    elsewhere, (t_other, _) = f.sealed_box()
    unboxed = f.tube(n=4)
    assert f.intake(box, t1).status_code == 200
    assert f.intake(box, t2, "leaking").status_code == 200
    problem(f.intake(box, t2), 409, "tube_already_scanned")
    f.intake(box, t_other)
    f.intake(box, unboxed, "damaged")
    f.intake(box, NEVER_BOUND)
    partial = f.get(f"/boxes/{box}/discrepancies").json()
    assert not partial["closed"]
    assert f.close_intake(box).json()["state"] == "intake_closed"
    problem(f.intake(box, t3), 409, "intake_closed")
    problem(f.close_intake(box), 409, "intake_closed")
    d = f.get(f"/boxes/{box}/discrepancies").json()
    assert d["closed"] and d["received"] == 1
    assert [(m["tube"], m["residents"], len(m["refs"])) for m in d["missing"]] == [(t3, 2, 2)]
    extra = {e["tube"]: e for e in d["extra"]}
    assert extra[t_other]["where"] == "other_box" and extra[t_other]["other_box"] == elsewhere
    assert extra[unboxed]["where"] == "unboxed" and extra[unboxed]["residents"] == 4
    assert extra[NEVER_BOUND]["where"] == "unbound"
    assert extra[NEVER_BOUND]["residents"] == 0
    assert sorted(x["tube"] for x in d["damaged"]) == sorted([t2, unboxed])
    # the lost index the binding core reads to let a lost re-sample be tried again
    lost = {k.decode(): v.decode() for k, v in r.hgetall(keys.lost(f.round)).items()}
    assert lost == {t2: "leaking", unboxed: "damaged", t3: "missing"}
    # t3 (2) + t2 (2) + t_other (3) + unboxed (4) + unbound (0)
    assert d["residents_affected"] == 11
    for issue in (*d["missing"], *d["extra"], *d["damaged"]):
        assert all(len(ref) == 8 for ref in issue["refs"])
    problem(f.get(f"/boxes/{elsewhere}/discrepancies"), 409, "box_not_received")


# -- roles, retries, revocation -------------------------------------------------------------


def test_wrong_roles_are_refused(f: Field) -> None:
    box, _ = f.sealed_box()
    scanner = f.scanner["S1"]
    for tok in (scanner, f.courier, f.lab, f.viewer, f.api.admin):
        problem(f.open(new_box(), token=tok), 403, "forbidden")
        problem(f.seal(box, 1, 1, token=tok), 403, "forbidden")
        problem(f.handover(box, token=tok), 403, "forbidden")
    for tok in (scanner, f.sealer, f.lab, f.viewer):
        problem(f.pickup(box, token=tok), 403, "forbidden")
    for tok in (scanner, f.sealer, f.courier, f.viewer):
        problem(f.receive(box, token=tok), 403, "forbidden")
        problem(f.intake(box, f.tube(), token=tok), 403, "forbidden")
        problem(f.close_intake(box, token=tok), 403, "forbidden")
    problem(f.get("/overdue", f.sealer), 403, "forbidden")
    problem(f.get(f"/boxes/{box}", scanner), 403, "forbidden")
    problem(f.get(f"/boxes/{box}", f.sealer2), 403, "forbidden")
    problem(f.get(f"/boxes/{box}", f.lab_b), 403, "forbidden")
    assert f.api.client.post("/v1/rounds/r1/boxes", json={}).status_code == 401


def test_service_checks_roles_too(f: Field) -> None:
    from sampling.auth.models import Device
    from sampling.errors import Forbidden

    boxer = f.api.client.app.state.services.boxer
    courier = Device(id="c", role="courier")
    calls = [
        boxer.open(courier, "r1", new_box(), seq=1, op="a"),
        boxer.seal(courier, "r1", new_box(), seq=1, op="a", tubes=1, samples=1),
        boxer.receive(courier, "r1", new_box(), seq=1, op="a"),
    ]

    async def each() -> None:
        for call in calls:
            with pytest.raises(Forbidden):
                await call

    f.api.client.blocking_portal.call(each)  # type: ignore[union-attr]


def test_every_operation_retries_exactly_once(f: Field) -> None:
    box = new_box()
    t1, t2 = f.tube(n=3), f.tube(n=2)
    lab = f.lab
    # (device, path, body, a different body for the same op id; None: nothing to vary)
    steps: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
        (f.sealer, "/boxes", {"box": box}, {"box": new_box()}),
        (f.sealer, f"/boxes/{box}/tubes", {"tube": t1}, {"tube": t2}),
        (f.sealer, f"/boxes/{box}/tubes", {"tube": t2}, {"tube": t1}),
        (f.sealer, f"/boxes/{box}/tubes/{t2}/remove", {"reason": "wrong"}, {"reason": "x"}),
        (f.sealer, f"/boxes/{box}/seal", {"tubes": 1, "samples": 3}, {"tubes": 1, "samples": 4}),
        (
            f.sealer,
            f"/boxes/{box}/handover",
            {"courier": "courier1", "lab": "LA"},
            {"courier": "courier2"},
        ),
        (f.courier, f"/boxes/{box}/pickup", {"place": "gate"}, {"place": "door"}),
        (lab, f"/boxes/{box}/receive", {}, None),
        (lab, f"/boxes/{box}/intake", {"tube": t1}, {"tube": t1, "condition": "damaged"}),
        (lab, f"/boxes/{box}/intake/close", {}, None),
    ]
    journal_len = f.api.client.blocking_portal.call(  # type: ignore[union-attr]
        f.api.client.app.state.services.redis.xlen, "{rd:r1}:journal"
    )
    for tok, path, body, changed in steps:
        seq = f.seq(tok)
        first = f.send(tok, path, {"seq": seq, **body}, op=f"retry-{seq}")
        assert first.status_code in (200, 201), first.text
        again = f.send(tok, path, {"seq": seq, **body}, op=f"retry-{seq}")
        assert again.status_code == first.status_code
        assert again.json() == {**first.json(), "replayed": True}
        if changed is not None:
            reused = f.send(tok, path, {"seq": seq, **changed}, op=f"retry-{seq}")
            problem(reused, 422, "operation_reused")
        problem(f.send(tok, path, {"seq": seq, **body}, op=f"other-{seq}"), 409, "seq_conflict")
    after = f.api.client.blocking_portal.call(  # type: ignore[union-attr]
        f.api.client.app.state.services.redis.xlen, "{rd:r1}:journal"
    )
    assert after - journal_len == len(steps)  # one entry per step, none for retries
    # a refusal is replayed as the same refusal
    seq = f.seq(f.sealer)
    first = f.send(f.sealer, f"/boxes/{box}/seal", {"seq": seq, "tubes": 1, "samples": 3}, op="s")
    again = f.send(f.sealer, f"/boxes/{box}/seal", {"seq": seq, "tubes": 1, "samples": 3}, op="s")
    assert (
        problem(first, 409, "box_sealed")["detail"] == problem(again, 409, "box_sealed")["detail"]
    )


def test_sequence_numbers(f: Field) -> None:
    problem(f.send(f.sealer, "/boxes", {"seq": 20_000, "box": new_box()}), 400, "seq_out_of_range")
    problem(f.send(f.sealer, "/boxes", {"seq": 0, "box": new_box()}), 400, "invalid_request")


def test_revoked_device_is_refused(f: Field) -> None:
    box = new_box()
    f.open(box)
    assert f.api.post("/v1/devices/seal-S1/revoke", f.api.admin, {}).status_code == 200
    got = f.open(new_box())
    assert got.status_code == 401


# -- reads: manifests, timelines, overdue ------------------------------------------------


def test_manifest_json_and_pdf(f: Field) -> None:
    box = new_box()
    f.open(box)
    problem(f.get(f"/boxes/{box}/manifest"), 409, "box_not_sealed")
    problem(f.get(f"/boxes/{box}/manifest.pdf"), 409, "box_not_sealed")
    problem(f.get(f"/boxes/{new_box()}/manifest"), 404, "not_found")
    f.add(box, t := f.tube(n=3))
    f.seal(box, 1, 3, lab="LA")
    m = f.get(f"/boxes/{box}/manifest", f.courier).json()
    assert (m["box"], m["tube_count"], m["sample_count"], m["sealed_by"]) == (box, 1, 3, "seal-S1")
    assert m["tubes"][0]["tube"] == t and m["tubes"][0]["residents"] == 3
    pdf = f.get(f"/boxes/{box}/manifest.pdf", f.sealer)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")


def test_timelines(f: Field) -> None:
    box, (t1, t2) = f.delivered()
    f.intake(box, t1, "damaged")
    f.close_intake(box)
    events = [e["event"] for e in f.get(f"/timeline/{t1}").json()["events"]]
    assert events == [
        "opened",
        "closed",
        "boxed",
        "sealed",
        "handed_over",
        "picked_up",
        "received",
        "intake",
    ]
    assert [e["event"] for e in f.get(f"/timeline/{t2}").json()["events"]][-1] == "missing"
    box_events = f.get(f"/timeline/{box}", f.lab).json()
    assert box_events["kind"] == "box"
    assert [e["event"] for e in box_events["events"]] == [
        "opened",
        "sealed",
        "handed_over",
        "picked_up",
        "received",
        "intake_closed",
    ]
    loose = f.tube()
    assert [e["event"] for e in f.get(f"/timeline/{loose}").json()["events"]] == [
        "opened",
        "closed",
    ]
    problem(f.get(f"/timeline/{NEVER_BOUND}"), 404, "not_found")
    problem(f.get(f"/timeline/{new_box()}"), 404, "not_found")
    problem(f.get(f"/timeline/{loose}", f.sealer2), 403, "forbidden")
    problem(f.get(f"/timeline/{box}", f.lab_b), 403, "forbidden")


def test_overdue_lists(f: Field) -> None:
    loose = f.tube()
    f.tube(close=False)
    sealed, _ = f.sealed_box(tubes=1)
    transit, _ = f.sealed_box(tubes=1)
    f.handover(transit)
    f.pickup(transit)
    arrived, _ = f.delivered(tubes=1)
    got = f.get("/overdue?unboxed=0&sealed=0&transit=0&intake=0").json()
    assert [x["code"] for x in got["unboxed"]] == [loose]
    assert got["unboxed"][0]["site"] == "S1"
    assert [x["code"] for x in got["sealed"]] == [sealed]
    assert [x["code"] for x in got["transit"]] == [transit]
    assert [x["code"] for x in got["intake"]] == [arrived]
    assert got["intake"][0]["lab"] == "LA"
    # the default limits: nothing is late yet
    fresh = f.get("/overdue", f.viewer).json()
    assert fresh["limits"]["sealed"] == 3600
    assert not any(fresh[w] for w in ("unboxed", "sealed", "transit", "intake"))
    # a boxed tube leaves the list, a tube taken out comes back
    box = new_box()
    f.open(box)
    f.add(box, loose)
    assert f.get("/overdue?unboxed=0").json()["unboxed"] == []
    f.remove(box, loose)
    assert [x["code"] for x in f.get("/overdue?unboxed=0").json()["unboxed"]] == [loose]
    problem(f.get("/overdue?unboxed=-1"), 400, "bad_input")
    problem(f.api.get("/v1/rounds/nope/overdue", f.api.admin), 404, "not_found")
