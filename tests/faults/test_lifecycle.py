"""The whole lifecycle as one Hypothesis state machine, through the API on the real server.

Scanners at two sites open tubes and bind residents (a small pool, so the same
person comes back), undo and close; a sealer boxes closed tubes and seals them
with the right counts or a miscount; a courier carries the box to lab LA, which
receives it, takes the tubes in (some damaged), closes intake and uploads a
result per tube. Mixed in: retries of any earlier request byte for byte (same
device, op id and seq) and second deliveries of stored results.

After every step it checks the invariants of DESIGN.md that a run can see:

1. every tube opened once (a second open, even in a later round, is refused; the
   claim names the first round) and no tube holds more than its capacity;
2. a resident is bound at most once in the round (over every tube record);
3. a box is sealed only with the counts right; a sealed box never changes;
   custody only moves forward, each step with who, when and where;
4. the journal grows by exactly one entry per accepted change (two for the scan
   that fills a tube: the scan and the close), and by none on a refusal or retry;
5. a retry gets the same answer (a boxing answer's echo of the box, on a later
   retry, is the box as it is now: see ``retry``) and changes nothing in Redis
   at all; a result delivered twice is stored once, a disagreeing one held once;
8. no raw resident code appears in any Redis key or value.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, Phase, event
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sampling.binding import keys
from sampling.binding.tube import TubeRecord
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer
from tests.binding import snapshot
from tests.boxing.field import Field, new_box, seal_outcome
from tests.conftest import SECRET, Api, resident, tube

pytestmark = pytest.mark.slow

CAPACITY = 5
RESIDENTS = [resident(n) for n in range(1, 13)]
RANK = {"open": 0, "sealed": 1, "picked_up": 2, "received": 3, "intake_closed": 4}
#: Who, when and where each custody step must carry once the box has reached it.
CUSTODY = {
    "sealed": ("sealed_at", "sealed_by", "site", "lab"),
    "picked_up": ("picked_up_at", "courier", "pickup_place"),
    "received": ("received_at", "received_by"),
    "intake_closed": ("intake_closed_at",),
}
SEALED_FIELDS = ("contents", "tubes", "samples", "sealed_at", "sealed_by", "site", "lab")
AT = datetime.now(UTC).replace(microsecond=0).isoformat()
ROWS: dict[str, dict[str, Any]] = {
    "negative": {"outcome": "negative", "tested_at": AT},
    "positive": {"outcome": "positive", "tested_at": AT, "ct_orf1ab": 21.5, "ct_n": 23.0},
    "invalid": {"outcome": "invalid", "tested_at": AT},
}
KINDS = ("scan", "undo", "close", "reopen", "add", "seal", "carry", "receive", "intake", "close")
#: What the runs exercised, across examples: the test checks the deep steps were reached.
SEEN: Counter[str] = Counter()
_rounds = itertools.count(1)
_tubes = itertools.count(70_000)
#: Tubes opened in earlier examples (other rounds): opening one again is refused.
EARLIER: list[str] = []


ECHO = ("state", "tubes", "samples")


def _strip(answer: dict[str, Any], keep: bool = False) -> dict[str, Any]:
    """A boxing answer without its echo of the box (``keep``: only the echo)."""
    echo = (*ECHO, "detail")
    return {k: v for k, v in answer.items() if (k in echo) is keep}


def note(what: str) -> None:
    event(what)
    SEEN[what] += 1


@pytest.fixture
def settings(server: EmbeddedServer, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=server.url, data_dir=tmp_path, secret_hex=SECRET, device_rate=100_000.0
    )


class _Tube:
    def __init__(self, site: str) -> None:
        self.site = site
        self.members: list[str] = []
        self.state = "open"  # open, closed, boxed


class _Box:
    def __init__(self) -> None:
        self.state = "open"
        self.tubes: list[str] = []
        self.scanned: set[str] = set()
        self.sealed_view: dict[str, Any] | None = None


def test_lifecycle(api: Api, r: redis.Redis) -> None:
    field = Field(api, "lc0")
    scanners = field.scanner  # S1, S2
    rb: Any = r  # replies are bytes (no decode_responses); redis-py types them loosely
    sent_total = [0]

    class Lifecycle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.round = f"lc{next(_rounds)}"
            field.round = self.round
            api.round(self.round)
            self.tubes: dict[str, _Tube] = {}
            self.bound: dict[str, str] = {}  # resident -> tube
            self.boxes: dict[str, _Box] = {}
            # The round's creation is journaled in its stream too (issue 11.7).
            self.journal = int(r.xlen(keys.journal(self.round)))
            self.sent: list[tuple[str, str, dict[str, Any], int, dict[str, Any]]] = []
            self.results: dict[str, str] = {}  # tube -> stored outcome
            self.held: set[tuple[str, str]] = set()
            self.seen: dict[str, str] = {}
            self.steps = 0

        # -- plumbing -------------------------------------------------------------------

        def jlen(self) -> int:
            return int(r.xlen(keys.journal(self.round)))

        def send(self, token: str, path: str, body: dict[str, Any], want: str) -> dict[str, Any]:
            """One op with a fresh seq; checks the answer's code and the journal's growth."""
            seq = field.seq(token)
            payload = {"op": f"op-{seq}", "seq": seq, **body}
            url = f"/v1/rounds/{self.round}{path}"
            before = self.jlen()
            resp = api.post(url, token, payload)
            got: dict[str, Any] = resp.json()
            code = got.get("code") if resp.status_code >= 400 else got.get("status")
            assert code == want, (url, payload, resp.text)
            note(f"{path.rsplit('/', 1)[-1]} {code}")
            grew = self.jlen() - before
            if want == "ok":
                assert got["replayed"] is False
                fills = got.get("kind") == "scan" and got.get("closed") is True
                kinds = [e[1][b"k"] for e in rb.xrevrange(keys.journal(self.round), count=grew)]
                if got.get("kind") == "intake_close":
                    # the close, and a discrepancy entry when tubes are missing or extra
                    assert 1 <= grew <= 2 and b"intake_close" in kinds, (url, kinds)
                    note(f"intake_close entries {kinds}")
                else:
                    assert grew == (2 if fills else 1), (url, grew, kinds)
            else:
                assert grew == 0, (url, grew, resp.text)
            self.journal += grew
            self.sent.append((token, url, payload, resp.status_code, got))
            sent_total[0] += 1
            return got

        # -- the steps, each checked against the model ----------------------------------

        def do_scan(self, code: str, who: str, site: str) -> None:
            t = self.tubes[code]
            if t.site != site:
                want = "tube_other_site"
            elif t.state == "boxed":
                want = "tube_boxed"
            elif t.state != "open":
                want = "tube_closed"
            elif who in self.bound:
                want = "resident_already_sampled"
            else:
                want = "ok"
            got = self.send(scanners[site], f"/tubes/{code}/scans", {"resident": who}, want)
            if want == "ok":
                t.members.append(who)
                self.bound[who] = code
                assert got["count"] == len(t.members)
                assert got["closed"] is (len(t.members) == CAPACITY)
                if len(t.members) == CAPACITY:
                    t.state = "closed"

        def do_undo(self, code: str) -> None:
            t = self.tubes[code]
            if t.state == "boxed":
                want = "tube_boxed"
            elif not t.members:
                want = "tube_empty"
            else:
                want = "ok"
            self.send(scanners[t.site], f"/tubes/{code}/undo", {}, want)
            if want == "ok":
                del self.bound[t.members.pop()]
                t.state = "open"

        def do_close(self, code: str) -> None:
            t = self.tubes[code]
            if t.state == "boxed":
                want = "tube_boxed"
            elif t.state != "open":
                want = "tube_closed"
            elif not t.members:
                want = "tube_empty"
            else:
                want = "ok"
            self.send(scanners[t.site], f"/tubes/{code}/close", {}, want)
            if want == "ok":
                t.state = "closed"

        def do_reopen(self, k: int, earlier: bool) -> None:
            """A barcode is opened once, ever: here or in an earlier round."""
            # EARLIER grows across examples: index it, never draw from it.
            pool = EARLIER if earlier and EARLIER else sorted(self.tubes)
            code = pool[k % len(pool)]
            self.send(scanners["S1"], "/tubes", {"tube": code, "capacity": CAPACITY}, "tube_used")

        def do_add(self, code: str, tc: str) -> None:
            box, t = self.boxes[code], self.tubes[tc]
            if box.state != "open":
                want = "box_sealed"
            elif t.site != "S1":
                want = "tube_other_site"
            elif t.state == "boxed":
                want = "tube_in_box"
            elif t.state == "open":
                want = "tube_open"
            else:
                want = "ok"
            self.send(field.sealer, f"/boxes/{code}/tubes", {"tube": tc}, want)
            if want == "ok":
                box.tubes.append(tc)
                t.state = "boxed"

        def do_seal(self, code: str, dt: int, ds: int) -> None:
            box = self.boxes[code]
            samples = sum(len(self.tubes[t].members) for t in box.tubes)
            want = seal_outcome(box.state, len(box.tubes), dt, ds)
            body = {"tubes": max(0, len(box.tubes) + dt), "samples": samples + ds, "lab": "LA"}
            self.send(field.sealer, f"/boxes/{code}/seal", body, want)
            if want == "ok":
                box.state = "sealed"
                view = field.get(f"/boxes/{code}").json()
                assert (view["tubes"], view["samples"]) == (len(box.tubes), samples)
                box.sealed_view = view

        def do_carry(self, code: str) -> None:
            """Hand over and pick up (refused unless the box is sealed and not yet moved)."""
            box = self.boxes[code]
            if box.state == "open":
                want = "box_not_sealed"
            elif box.state != "sealed":
                want = "box_already_picked_up"
            else:
                want = "ok"
            self.send(field.sealer, f"/boxes/{code}/handover", {"courier": "courier1"}, want)
            if want == "ok":
                self.send(field.courier, f"/boxes/{code}/pickup", {"place": "S1 gate"}, "ok")
                box.state = "picked_up"

        def do_receive(self, code: str) -> None:
            box = self.boxes[code]
            if box.state == "open":
                want = "wrong_lab"  # no lab until the seal names one
            elif RANK[box.state] < RANK["picked_up"]:
                want = "box_not_picked_up"
            elif box.state != "picked_up":
                want = "box_already_received"
            else:
                want = "ok"
            self.send(field.lab, f"/boxes/{code}/receive", {}, want)
            if want == "ok":
                box.state = "received"

        def lab_step(self, box: _Box) -> str | None:
            if box.state == "open":
                return "wrong_lab"  # no lab until the seal names one
            if box.state == "sealed":
                return "box_not_picked_up"
            if box.state == "picked_up":
                return "box_not_received"
            if box.state == "intake_closed":
                return "intake_closed"
            return None

        def do_intake(self, code: str, tc: str, damaged: bool) -> None:
            box = self.boxes[code]
            want = self.lab_step(box) or ("tube_already_scanned" if tc in box.scanned else "ok")
            body = {"tube": tc, "condition": "damaged" if damaged else "ok"}
            self.send(field.lab, f"/boxes/{code}/intake", body, want)
            if want == "ok":
                box.scanned.add(tc)

        def do_close_intake(self, code: str) -> None:
            box = self.boxes[code]
            want = self.lab_step(box) or "ok"
            self.send(field.lab, f"/boxes/{code}/intake/close", {}, want)
            if want == "ok":
                box.state = "intake_closed"
                d = field.get(f"/boxes/{code}/discrepancies").json()
                assert {m["tube"] for m in d["missing"]} == set(box.tubes) - box.scanned
                assert {e["tube"] for e in d["extra"]} == box.scanned - set(box.tubes)

        # -- the field's day: one rule takes any step that applies, so runs get deep -------
        # (one rule, not ten: Hypothesis switches rules off at random per example, and
        # a chain of ten rules would seldom run whole.)

        def open_tubes(self, site: str = "S1") -> list[str]:
            return [c for c, t in self.tubes.items() if t.state == "open" and t.site == site]

        def closed_s1(self) -> list[str]:
            return [c for c, t in self.tubes.items() if t.state == "closed" and t.site == "S1"]

        def boxes_in(self, state: str, full: bool = False) -> list[str]:
            """Boxes in ``state``; ``full``: only those with tubes in (open) or taken in."""
            return [
                c
                for c, b in self.boxes.items()
                if b.state == state
                and (not full or bool(b.tubes if state == "open" else b.scanned))
            ]

        def steps_open(self) -> list[str]:
            """The next steps of the day that apply now, in a fixed order."""
            out = []
            if len(self.tubes) < 6 and len(self.open_tubes()) < 2:
                out.append("open_tube")
            if self.open_tubes() or self.open_tubes("S2"):
                out.append("scan")
            if [c for c in self.open_tubes() if self.tubes[c].members]:
                out.append("close_tube")
            if len(self.boxes) < 3 and not self.boxes_in("open"):
                out.append("open_box")
            if self.boxes_in("open") and self.closed_s1():
                out.append("box_tube")
            if self.boxes_in("open", full=True):
                out.append("seal")
            if self.boxes_in("sealed"):
                out.append("carry")
            if self.boxes_in("picked_up"):
                out.append("receive")
            if self.boxes_in("received"):
                out.append("intake")
            if self.boxes_in("received", full=True):
                out.append("close_intake")
            if self.taken_in():
                out.append("result")
            return out

        @precondition(lambda self: self.steps_open())
        @rule(data=st.data())
        def advance(self, data: st.DataObject) -> None:
            steps = self.steps_open()
            # Half the time the step furthest along the day, so boxes reach the lab.
            deep = data.draw(st.booleans(), label="deep")
            step = steps[-1] if deep else data.draw(st.sampled_from(steps), label="step")
            pick = data.draw
            match step:
                case "open_tube":
                    site = pick(st.sampled_from(["S1", "S1", "S2"]))
                    code = tube(next(_tubes))
                    self.send(scanners[site], "/tubes", {"tube": code, "capacity": CAPACITY}, "ok")
                    self.tubes[code] = _Tube(site)
                case "scan":  # a small pool of residents: some come twice
                    code = pick(st.sampled_from(self.open_tubes() or self.open_tubes("S2")))
                    self.do_scan(code, pick(st.sampled_from(RESIDENTS)), self.tubes[code].site)
                case "close_tube":
                    ready = [c for c in self.open_tubes() if self.tubes[c].members]
                    self.do_close(pick(st.sampled_from(ready)))
                case "open_box":
                    code = new_box()
                    self.send(field.sealer, "/boxes", {"box": code}, "ok")
                    self.boxes[code] = _Box()
                case "box_tube":
                    code = pick(st.sampled_from(self.boxes_in("open")))
                    self.do_add(code, pick(st.sampled_from(self.closed_s1())))
                case "seal":  # with the counts as found, or miscounted (refused)
                    code = pick(st.sampled_from(self.boxes_in("open", full=True)))
                    miscount = st.sampled_from([0, 0, 0, 1, -1])
                    self.do_seal(code, pick(miscount), pick(miscount))
                case "carry":
                    self.do_carry(pick(st.sampled_from(self.boxes_in("sealed"))))
                case "receive":
                    self.do_receive(pick(st.sampled_from(self.boxes_in("picked_up"))))
                case "intake":  # some damaged; now and then a tube the box never held
                    code = pick(st.sampled_from(self.boxes_in("received")))
                    box = self.boxes[code]
                    left = [t for t in box.tubes if t not in box.scanned]
                    extra = pick(st.integers(0, 4)) == 0
                    pool = sorted(self.tubes) if extra or not left else left
                    damaged = pick(st.integers(0, 3)) == 0
                    self.do_intake(code, pick(st.sampled_from(pool)), damaged)
                case "close_intake":
                    self.do_close_intake(pick(st.sampled_from(self.boxes_in("received", True))))
                case _:
                    tc = pick(st.sampled_from(self.taken_in()))
                    self.upload(tc, pick(st.sampled_from(sorted(ROWS))))

        @precondition(lambda self: any(t.members for t in self.tubes.values()))
        @rule(data=st.data())
        def undo(self, data: st.DataObject) -> None:
            """Undo a tube's last scan (refused once the tube is boxed)."""
            self.do_undo(
                data.draw(st.sampled_from([c for c, t in self.tubes.items() if t.members]))
            )

        @precondition(lambda self: self.tubes and self.boxes)
        @rule(
            kind=st.sampled_from(KINDS),
            i=st.integers(0, 1_000),
            j=st.integers(0, 1_000),
            who=st.sampled_from(RESIDENTS),
            flag=st.booleans(),
        )
        def misstep(self, kind: str, i: int, j: int, who: str, flag: bool) -> None:
            """Any step on any tube or box, mostly ones the rules refuse."""
            tubes, boxes = sorted(self.tubes), list(self.boxes)
            tc, box = tubes[i % len(tubes)], boxes[j % len(boxes)]
            match kind:
                case "scan":
                    self.do_scan(tc, who, "S2" if flag else "S1")
                case "undo":
                    self.do_undo(tc)
                case "close":
                    self.do_close(tc)
                case "reopen":
                    self.do_reopen(i, flag)
                case "add":
                    self.do_add(box, tc)
                case "seal":
                    self.do_seal(box, 1 if flag else 0, 0)
                case "carry":
                    self.do_carry(box)
                case "receive":
                    self.do_receive(box)
                case "intake":
                    self.do_intake(box, tc, flag)
                case _:
                    self.do_close_intake(box)

        # -- results ----------------------------------------------------------------------

        def taken_in(self) -> list[str]:
            return sorted(set().union(*(b.scanned & set(b.tubes) for b in self.boxes.values())))

        def upload(self, tc: str, outcome: str) -> None:
            if tc not in self.results:
                want = "stored"
            elif self.results[tc] == outcome:
                want = "duplicate"
            else:
                want = "held"
            again = (tc, outcome) in self.held  # the same disagreeing result, held once
            if want == "held":
                self.held.add((tc, outcome))
            before, stored = self.jlen(), r.hget(f"{{rd:{self.round}}}:result", tc)
            row = {"tube": tc, **ROWS[outcome]}
            resp = api.post(f"/v1/rounds/{self.round}/results", field.lab, {"results": [row]})
            assert resp.status_code == 200, resp.text
            got = resp.json()
            assert [x["status"] for x in got["rows"]] == [want], (row, got, self.results)
            note(f"result {want}")
            grew = self.jlen() - before
            assert grew == (0 if want == "duplicate" or again else 1), (want, grew)
            self.journal += grew
            after = rb.hget(f"{{rd:{self.round}}}:result", tc)
            if want == "stored":
                self.results[tc] = outcome
                assert after is not None and after.startswith(outcome.encode())
            else:
                assert after == stored  # stored once, never overwritten

        @precondition(lambda self: self.results)
        @rule(data=st.data())
        def deliver_again(self, data: st.DataObject) -> None:
            """The lab system sends a stored result a second time."""
            tc = data.draw(st.sampled_from(sorted(self.results)))
            self.upload(tc, self.results[tc])

        # -- retries ----------------------------------------------------------------------

        @precondition(lambda self: self.sent)
        @rule(data=st.data(), last=st.booleans())
        def retry(self, data: st.DataObject, last: bool) -> None:
            """Re-send an earlier request byte for byte: same answer, nothing changes.

            Right after the first send the whole answer must match. Later, a boxing
            answer's echo of the box (``state``, ``tubes``, ``samples``, and the
            refusal's ``detail`` that quotes them) is the box as it is now, not as
            it was: the outcome (status, code, op, seq) must match, the echo must be
            the current box.
            """
            i = len(self.sent) - 1 if last else data.draw(st.integers(0, len(self.sent) - 1))
            token, url, payload, status, answer = self.sent[i]
            before = snapshot(r)
            resp = api.post(url, token, payload)
            assert resp.status_code == status, (url, payload, answer, resp.text)
            got = resp.json()
            want = {**answer, "replayed": True} if status < 400 else answer
            if i == len(self.sent) - 1 or "box" not in answer:
                assert got == want, (url, payload, answer, got)
            else:
                assert _strip(got) == _strip(want), (url, payload, answer, got)
                view = field.get(f"/boxes/{answer['box']}").json()
                assert [got[k] for k in ECHO] == [view[k] for k in ECHO], (got, view)
                if _strip(got, keep=True) != _strip(want, keep=True):
                    note("retry: box echo is the box now, not then")
            note(f"retry {'ok' if status < 400 else 'refused'}")
            assert snapshot(r) == before, (url, payload)

        # -- invariants -------------------------------------------------------------------

        @invariant()
        def journal_counts_accepted_changes(self) -> None:
            assert self.jlen() == self.journal

        @invariant()
        def tubes_and_bindings(self) -> None:
            prefix = f"{keys.tag(self.round)}:t:"
            records = {
                k.decode()[len(prefix) :]: TubeRecord(rb.get(k) or b"")
                for k in r.scan_iter(match=prefix.replace("{", "\\{").replace("}", "\\}") + "*")
            }
            assert set(records) == set(self.tubes)
            hashes: list[bytes] = []
            for code, rec in records.items():
                t = self.tubes[code]
                assert rec.capacity == CAPACITY
                assert len(rec.members) <= rec.capacity, code
                assert len(rec.members) == len(t.members), code
                assert rec.state == t.state, code
                assert rec.site == t.site
                claim = r.hget(keys.tube_claim(code), code)
                assert claim == self.round.encode(), (code, claim)
                hashes.extend(h for h, _ in rec.members)
            assert len(hashes) == len(set(hashes)), "a resident bound twice in the round"
            assert len(hashes) == len(self.bound)

        @invariant()
        def boxes_and_custody(self) -> None:
            for code, box in self.boxes.items():
                view = field.get(f"/boxes/{code}").json()
                assert view["state"] == box.state, code
                assert RANK[view["state"]] >= RANK[self.seen.get(code, "open")]
                self.seen[code] = view["state"]
                assert [c["tube"] for c in view["contents"]] == box.tubes or {
                    c["tube"] for c in view["contents"]
                } == set(box.tubes)
                for step, fields in CUSTODY.items():
                    if RANK[box.state] >= RANK[step]:
                        for f in fields:
                            assert view.get(f), (code, step, f, view)
                if box.sealed_view is not None:
                    for k in SEALED_FIELDS:
                        assert view[k] == box.sealed_view[k], (code, k)

        @invariant()
        def no_raw_resident_codes(self) -> None:
            self.steps += 1
            if self.steps % 5:
                return
            self.check_privacy()

        def check_privacy(self) -> None:
            dump = repr(snapshot(r)).encode()
            for code in RESIDENTS:
                assert code.encode() not in dump, code
                assert code[1:].encode() not in dump, code

        def teardown(self) -> None:
            self.check_privacy()
            EARLIER.extend(self.tubes)

    run_state_machine_as_test(
        Lifecycle,
        settings=hsettings(
            max_examples=15,
            stateful_step_count=30,
            derandomize=True,  # the same examples on every run (CI)
            deadline=None,
            suppress_health_check=list(HealthCheck),
            # No shrinking: a failing run is printed step by step as it ran, and
            # shrinking through the API would take minutes.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        ),
    )
    assert sent_total[0] > 0
    # The day got somewhere: tubes filled, boxes sealed, answers replayed.
    assert SEEN["scans ok"] and SEEN["seal ok"] and SEEN["retry ok"], sorted(SEEN.items())
