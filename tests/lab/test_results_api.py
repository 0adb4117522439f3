"""Results over the API, against the real server: stored once, conflicts held, orphans queued."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from sampling import codes
from sampling.lab import keys
from tests.conftest import Api, resident, tube

pytestmark = pytest.mark.cluster_too

AT = datetime.now(UTC).replace(microsecond=0).isoformat()


def boxed_to(api: Api, tubes: list[str], lab: str, box: str) -> None:
    """Close ``tubes`` (bound at S1) and seal them in ``box``, addressed to ``lab``."""
    tok = api.device(f"d-{box}", site="S1")
    sealer = api.device(f"s-{box}", role="sealer", site="S1")
    for n, t in enumerate(tubes, start=1):
        close = api.post(f"/v1/rounds/r1/tubes/{t}/close", tok, {"op": f"c{n}", "seq": n})
        assert close.status_code == 200, close.text
    base = f"/v1/rounds/r1/boxes/{box}"
    assert (
        api.post("/v1/rounds/r1/boxes", sealer, {"op": "o", "seq": 1, "box": box}).status_code
        == 201
    )
    for n, t in enumerate(tubes, start=2):
        add = api.post(f"{base}/tubes", sealer, {"op": f"a{n}", "seq": n, "tube": t})
        assert add.status_code == 200, add.text
    samples = sum(api.get(f"/v1/rounds/r1/tubes/{t}", api.admin).json()["count"] for t in tubes)
    seq = len(tubes) + 2
    body = {"op": "seal", "seq": seq, "tubes": len(tubes), "samples": samples, "lab": lab}
    seal = api.post(f"{base}/seal", sealer, body)
    assert seal.status_code == 200, seal.text


def _bound_round(api: Api) -> str:
    """Round r1 with tube 1 (three residents) sealed in a box addressed to lab L1."""
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    for n in range(3):
        assert api.scan(tok, tube(1), resident(n)).status_code == 200
    boxed_to(api, [tube(1)], "L1", codes.make_box(1))
    return api.device("lab1", role="lab", lab="L1")


def _post(api: Api, token: str, rows: list[dict[str, Any]], dry_run: bool = False) -> Any:
    return api.post("/v1/rounds/r1/results", token, {"results": rows, "dry_run": dry_run})


def _row(t: str, outcome: str = "negative", **kw: Any) -> dict[str, Any]:
    return {"tube": t, "outcome": outcome, "tested_at": AT, **kw}


def test_duplicate_stored_once_conflict_held_orphan_queued(api: Api, r: redis.Redis) -> None:
    lab = _bound_round(api)
    first = _post(api, lab, [_row(tube(1))])
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == 1
    again = _post(api, lab, [_row(tube(1))]).json()
    assert (again["stored"], again["duplicate"]) == (0, 1)
    clash = _post(api, lab, [_row(tube(1), "positive", ct_orf1ab=22.5, ct_n=24.1)]).json()
    assert clash["held"] == 1
    assert r.hget(keys.result("r1"), tube(1)).startswith(b"negative|")  # not overwritten
    orphan = _post(api, lab, [_row(tube(99))]).json()
    assert orphan["orphan"] == 1
    assert r.hexists(keys.orphans("r1"), tube(99))
    held = api.get("/v1/rounds/r1/results/held", lab).json()
    assert [h["tube"] for h in held] == [tube(1)]
    assert held[0]["held"]["outcome"] == "positive"
    assert held[0]["stored"]["outcome"] == "negative"
    orphans = api.get("/v1/rounds/r1/results/orphans", lab).json()
    assert [o["result"]["tube"] for o in orphans] == [tube(99)]
    entries = r.xrange(keys.journal("r1"))
    kinds = [e[1][b"k"] for e in entries if e[1][b"k"].startswith(b"result")]
    assert kinds == [b"result", b"result_held", b"result_orphan"]
    stored = next(e[1] for e in entries if e[1][b"k"] == b"result")
    assert stored[b"outcome"] == b"negative" and stored[b"lab"] == b"L1"
    assert stored[b"d"] == b"lab1" and stored[b"tube"] == tube(1).encode()


def test_dry_run_classifies_and_stores_nothing(api: Api, r: redis.Redis) -> None:
    lab = _bound_round(api)
    before = r.xlen(keys.journal("r1"))
    rows = [_row(tube(1)), _row(tube(1)), _row(tube(1), "invalid"), _row(tube(98))]
    got = _post(api, lab, rows, dry_run=True).json()
    assert [x["status"] for x in got["rows"]] == ["stored", "duplicate", "held", "orphan"]
    assert got["dry_run"] is True
    assert r.xlen(keys.journal("r1")) == before
    assert not r.exists(keys.result("r1"), keys.orphans("r1"), keys.review("r1"))


def test_bad_rows_refused_before_redis_and_counted(api: Api, r: redis.Redis) -> None:
    lab = _bound_round(api)
    garbled = tube(1)[:-1] + str((int(tube(1)[-1]) + 1) % 10)
    rows = [
        _row(garbled),
        _row("R12345"),
        _row(tube(1), "positive"),  # positive without Ct values
        _row(tube(1), "negative"),
    ]
    got = _post(api, lab, rows).json()
    assert got["rows_in"] == 4 == got["accepted"] + got["refused"]
    assert got["refused"] == 3 and got["stored"] == 1
    reasons = [p["reason"] for p in got["problems"]]
    assert "check digit" in reasons[0] and "not a tube code" in reasons[1]
    assert "Ct" in reasons[2]
    assert r.hlen(keys.result("r1")) == 1


def test_wrong_outcome_word_is_a_400(api: Api) -> None:
    lab = _bound_round(api)
    resp = _post(api, lab, [_row(tube(1), "maybe")])
    assert resp.status_code == 400


def test_lab_reports_only_its_own_lab_and_roles(api: Api) -> None:
    lab = _bound_round(api)
    resp = _post(api, lab, [_row(tube(1), lab="L2")])
    assert resp.status_code == 403
    scanner = api.device("d2", site="S1")
    assert _post(api, scanner, [_row(tube(1))]).status_code == 403


def test_unknown_round_is_404(api: Api) -> None:
    lab = _bound_round(api)
    resp = api.post("/v1/rounds/nope/results", lab, {"results": [_row(tube(1))]})
    assert resp.status_code == 404


def test_hl7_file_upload(api: Api) -> None:
    lab = _bound_round(api)
    day = datetime.now().strftime("%Y%m%d")
    msg = (
        f"MSH|^~\\&|LIS|L1|||{day}120000||ORU^R01|1|P|2.5.1\r"
        f"OBR|1||{tube(1)}^L1|94500-6^SARS-CoV-2^LN|||{day}000100\r"
        f"OBX|1|CWE|94500-6^SARS-CoV-2 RNA^LN||10828004^Positive^SCT||||||F|||{day}000200\r"
        "OBX|2|NM|ORF1ab Ct^ORF1ab gene Ct||23.4||||||F\r"
        "OBX|3|NM|N gene Ct^N gene Ct||25.1||||||F\r"
    )
    resp = api.client.post("/v1/rounds/r1/results/file", content=msg.encode(), headers=api.h(lab))
    assert resp.status_code == 200, resp.text
    assert resp.json()["stored"] == 1


# -- results only from the lab that holds the tube ------------------------------------


def test_another_lab_cannot_store_a_result_for_a_tube_it_does_not_hold(
    api: Api, r: redis.Redis
) -> None:
    """Found against main: lab Y stored a positive for lab X's tube; X's negative was held."""
    x = _bound_round(api)  # tube 1 is addressed to L1
    y = api.device("lab2", role="lab", lab="L2")
    before = r.xlen(keys.journal("r1"))
    positive = _row(tube(1), "positive", ct_orf1ab=21.0, ct_n=22.0)
    for dry_run in (True, False):
        got = _post(api, y, [positive], dry_run=dry_run).json()
        assert (got["stored"], got["held"], got["refused"], got["accepted"]) == (0, 0, 1, 0)
        (row,) = got["rows"]
        assert row["status"] == "refused"
        assert "another lab" in row["reason"] and codes.make_box(1) in row["reason"]
        assert got["problems"][0]["value"] == tube(1)
    assert r.xlen(keys.journal("r1")) == before
    assert not r.exists(keys.result("r1"), keys.review("r1"), keys.count("r1"))
    mine = _post(api, x, [_row(tube(1))]).json()
    assert (mine["stored"], mine["held"]) == (1, 0)
    assert r.hget(keys.result("r1"), tube(1)).startswith(b"negative|")


def test_unboxed_tube_and_lab_less_device_are_refused_admin_is_not(api: Api) -> None:
    lab = _bound_round(api)
    tok = api.device("d9", site="S1")
    assert api.open(tok, tube(2)).status_code == 201
    assert api.scan(tok, tube(2), resident(7)).status_code == 200
    got = _post(api, lab, [_row(tube(2))]).json()
    assert got["rows"][0]["status"] == "refused"
    assert "never boxed" in got["rows"][0]["reason"]
    nolab = api.device("lab-none", role="lab")
    got = _post(api, nolab, [_row(tube(1))]).json()
    assert got["rows"][0]["status"] == "refused"
    # The district admin corrects any lab's results (a file from a lab's system).
    got = _post(api, api.admin, [_row(tube(2), lab="L9")]).json()
    assert got["rows"][0]["status"] == "stored"


def test_after_intake_closes_only_tubes_that_arrived_take_results(api: Api) -> None:
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    for t in (tube(1), tube(2)):
        assert api.open(tok, t).status_code == 201
        assert api.scan(tok, t, resident(int(t[-3:]))).status_code == 200
    box = codes.make_box(1)
    boxed_to(api, [tube(1), tube(2)], "L1", box)
    lab = api.device("lab1", role="lab", lab="L1")
    courier = api.device("c1", role="courier")

    def send(token: str, path: str, seq: int, **body: Any) -> None:
        resp = api.post(f"/v1/rounds/r1/boxes/{box}{path}", token, {"op": path, "seq": seq, **body})
        assert resp.status_code == 200, resp.text

    sealer = api.device("s2", role="sealer", site="S1")
    send(sealer, "/handover", 1, courier="c1")
    send(courier, "/pickup", 1, place="S1")
    send(lab, "/receive", 1)
    send(lab, "/intake", 2, tube=tube(1), condition="ok")  # tube 2 never arrived
    send(lab, "/intake/close", 3)
    got = _post(api, lab, [_row(tube(1)), _row(tube(2))]).json()
    assert [x["status"] for x in got["rows"]] == ["stored", "refused"]
    assert "not scanned in" in got["rows"][1]["reason"]


def test_a_lab_lists_only_its_own_held_and_orphan_rows(api: Api) -> None:
    x = _bound_round(api)
    y = api.device("lab2", role="lab", lab="L2")
    assert _post(api, x, [_row(tube(1))]).json()["stored"] == 1
    assert _post(api, x, [_row(tube(1), "invalid")]).json()["held"] == 1
    assert _post(api, x, [_row(tube(90))]).json()["orphan"] == 1
    assert _post(api, y, [_row(tube(91))]).json()["orphan"] == 1
    assert [h["tube"] for h in api.get("/v1/rounds/r1/results/held", x).json()] == [tube(1)]
    assert api.get("/v1/rounds/r1/results/held", y).json() == []
    orphans = {
        who: [o["result"]["tube"] for o in api.get("/v1/rounds/r1/results/orphans", tok).json()]
        for who, tok in (("x", x), ("y", y), ("admin", api.admin))
    }
    assert orphans == {"x": [tube(90)], "y": [tube(91)], "admin": [tube(90), tube(91)]}
    viewer = api.device("v1", role="viewer")
    assert len(api.get("/v1/rounds/r1/results/held", viewer).json()) == 1
