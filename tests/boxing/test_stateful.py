"""A Hypothesis state machine over boxes and custody, through the API on the real server.

It drives sealers, couriers and labs at random against a model and checks, after
every step: each tube is in at most one box (and its record says boxed exactly
then), a sealed box never changes, custody never goes back, and a retry of the
last accepted operation gets the same answer without a second journal entry.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer
from tests.boxing.field import Field, new_box, seal_outcome
from tests.conftest import SECRET, Api

CAPACITY = 3
RANK = {"open": 0, "sealed": 1, "picked_up": 2, "received": 3, "intake_closed": 4}
_rounds = itertools.count(1)


@pytest.fixture
def settings(server: EmbeddedServer, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=server.url,
        data_dir=tmp_path,
        secret_hex=SECRET,
        device_rate=100_000.0,
        box_capacity=CAPACITY,
    )


class _Box:
    def __init__(self) -> None:
        self.state = "open"
        self.tubes: set[str] = set()
        self.handed_to: str | None = None
        self.lab = ""
        self.scanned: set[str] = set()
        self.sealed_view: dict[str, Any] | None = None


def test_boxes_and_custody(api: Api) -> None:
    field = Field(api)
    couriers = {"courier1": field.courier, "courier2": field.courier2}
    labs = {"LA": field.lab, "LB": field.lab_b}

    class Custody(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            field.round = f"st{next(_rounds)}"
            api.round(field.round)
            self.residents: dict[str, int] = {}
            for n in (1, 2, 3, 2, 1, 3):
                self.residents[field.tube(n=n)] = n
            self.open_tube = field.tube(n=1, close=False)
            self.other_site = field.tube(site="S2", n=1)
            self.tubes = [*self.residents, self.open_tube, self.other_site]
            self.boxes: dict[str, _Box] = {}
            self.order: list[str] = []
            self.seen: dict[str, str] = {}
            self.last: tuple[str, str, dict[str, Any], Any] | None = None

        # -- helpers --------------------------------------------------------------

        def box_at(self, i: int) -> tuple[str, _Box]:
            code = self.order[i % len(self.order)]
            return code, self.boxes[code]

        def send(self, token: str, path: str, body: dict[str, Any], expected: str) -> None:
            resp = field.send(token, path, dict(body))
            code = resp.json().get("code") if resp.status_code >= 400 else "ok"
            assert code == expected, (path, body, resp.text)
            event(f"{path.rsplit('/', 1)[-1] if '/' in path[1:] else 'open'}: {code}")
            if code == "ok":
                sent = {"seq": resp.json()["seq"], **body}
                self.last = (token, path, sent, resp.json())

        # -- the sealer -------------------------------------------------------------

        @precondition(lambda self: len(self.boxes) < 3)
        @rule()
        def open_box(self) -> None:
            code = new_box()
            self.send(field.sealer, "/boxes", {"box": code}, "ok")
            self.boxes[code] = _Box()
            self.order.append(code)

        def add(self, i: int, t: int) -> None:
            code, box = self.box_at(i)
            tube = self.tubes[t]
            inside = any(tube in b.tubes for b in self.boxes.values())
            if box.state != "open":
                want = "box_sealed"
            elif tube == self.other_site:
                want = "tube_other_site"
            elif inside:
                want = "tube_in_box"
            elif tube == self.open_tube:
                want = "tube_open"
            elif len(box.tubes) >= CAPACITY:
                want = "box_full"
            else:
                want = "ok"
            self.send(field.sealer, f"/boxes/{code}/tubes", {"tube": tube}, want)
            if want == "ok":
                box.tubes.add(tube)

        def remove(self, i: int, t: int) -> None:
            code, box = self.box_at(i)
            tube = self.tubes[t]
            if box.state != "open":
                want = "box_sealed"
            elif tube not in box.tubes:
                want = "tube_not_in_box"
            else:
                want = "ok"
            path = f"/boxes/{code}/tubes/{tube}/remove"
            self.send(field.sealer, path, {"reason": "recount"}, want)
            if want == "ok":
                box.tubes.discard(tube)

        def seal(self, i: int, dt: int, ds: int) -> None:
            code, box = self.box_at(i)
            samples = sum(self.residents[t] for t in box.tubes)
            want = seal_outcome(box.state, len(box.tubes), dt, ds)
            body = {"tubes": max(0, len(box.tubes) + dt), "samples": samples + ds, "lab": "LA"}
            self.send(field.sealer, f"/boxes/{code}/seal", body, want)
            if want == "ok":
                box.state, box.lab = "sealed", "LA"
                box.sealed_view = field.get(f"/boxes/{code}").json()

        def handover(self, i: int, courier: str) -> None:
            code, box = self.box_at(i)
            if box.state == "open":
                want = "box_not_sealed"
            elif box.state != "sealed":
                want = "box_already_picked_up"
            elif box.handed_to:
                want = "box_already_handed_over"
            else:
                want = "ok"
            self.send(field.sealer, f"/boxes/{code}/handover", {"courier": courier}, want)
            if want == "ok":
                box.handed_to = courier

        # -- the courier and the lab -------------------------------------------------

        def pickup(self, i: int, courier: str) -> None:
            code, box = self.box_at(i)
            if box.state == "open":
                want = "box_not_sealed"
            elif box.state != "sealed":
                want = "box_already_picked_up"
            elif box.handed_to is None:
                want = "box_not_handed_over"
            elif box.handed_to != courier:
                want = "courier_mismatch"
            else:
                want = "ok"
            self.send(couriers[courier], f"/boxes/{code}/pickup", {}, want)
            if want == "ok":
                box.state = "picked_up"

        def receive(self, i: int, lab: str) -> None:
            code, box = self.box_at(i)
            if box.lab != lab:
                want = "wrong_lab"
            elif RANK[box.state] < RANK["picked_up"]:
                want = "box_not_picked_up"
            elif box.state != "picked_up":
                want = "box_already_received"
            else:
                want = "ok"
            self.send(labs[lab], f"/boxes/{code}/receive", {}, want)
            if want == "ok":
                box.state = "received"

        def _lab_step(self, box: _Box) -> str | None:
            if box.lab != "LA":
                return "wrong_lab"
            if box.state in ("open", "sealed"):
                return "box_not_picked_up"
            if box.state == "picked_up":
                return "box_not_received"
            if box.state == "intake_closed":
                return "intake_closed"
            return None

        def intake(self, i: int, t: int, damaged: bool) -> None:
            code, box = self.box_at(i)
            tube = self.tubes[t]
            want = self._lab_step(box) or ("tube_already_scanned" if tube in box.scanned else "ok")
            body = {"tube": tube, "condition": "damaged" if damaged else "ok"}
            self.send(field.lab, f"/boxes/{code}/intake", body, want)
            if want == "ok":
                box.scanned.add(tube)

        def close_intake(self, i: int) -> None:
            code, box = self.box_at(i)
            want = self._lab_step(box) or "ok"
            self.send(field.lab, f"/boxes/{code}/intake/close", {}, want)
            if want == "ok":
                box.state = "intake_closed"
                d = field.get(f"/boxes/{code}/discrepancies").json()
                assert {m["tube"] for m in d["missing"]} == box.tubes - box.scanned
                assert {e["tube"] for e in d["extra"]} == box.scanned - box.tubes

        @precondition(lambda self: self.boxes)
        @rule(
            kind=st.sampled_from(
                ["add", "remove", "seal", "handover", "pickup", "receive", "intake", "close"]
            ),
            i=st.integers(0, 3),
            t=st.integers(0, 7),
            flag=st.booleans(),
            delta=st.sampled_from([0, 1, -1]),
        )
        def any_step(self, kind: str, i: int, t: int, flag: bool, delta: int) -> None:
            """Any step on any box, mostly ones the rules refuse."""
            courier = "courier1" if flag else "courier2"
            match kind:
                case "add":
                    self.add(i, t)
                case "remove":
                    self.remove(i, t % 6)
                case "seal":
                    self.seal(i, delta, int(flag))
                case "handover":
                    self.handover(i, courier)
                case "pickup":
                    self.pickup(i, courier)
                case "receive":
                    self.receive(i, "LA" if flag else "LB")
                case "intake":
                    self.intake(i, t, flag)
                case _:
                    self.close_intake(i)

        # -- the happy path: each step taken where it applies, so runs get deep ---------

        def _where(self, state: str, extra: Any = None) -> list[int]:
            return [
                i
                for i, c in enumerate(self.order)
                if self.boxes[c].state == state and (extra is None or extra(self.boxes[c]))
            ]

        def _free(self) -> list[str]:
            taken = set().union(*(b.tubes for b in self.boxes.values()))
            return [t for t in self.residents if t not in taken]

        @precondition(
            lambda self: self._free() and self._where("open", lambda b: len(b.tubes) < CAPACITY)
        )
        @rule(data=st.data())
        def add_free_tube(self, data: st.DataObject) -> None:
            i = data.draw(st.sampled_from(self._where("open", lambda b: len(b.tubes) < CAPACITY)))
            self.add(i, self.tubes.index(data.draw(st.sampled_from(self._free()))))

        @precondition(lambda self: self._where("open", lambda b: b.tubes))
        @rule(data=st.data())
        def seal_counted(self, data: st.DataObject) -> None:
            self.seal(data.draw(st.sampled_from(self._where("open", lambda b: b.tubes))), 0, 0)

        @precondition(lambda self: self._where("sealed", lambda b: b.handed_to is None))
        @rule(data=st.data(), courier=st.sampled_from(sorted(couriers)))
        def hand_over_sealed(self, data: st.DataObject, courier: str) -> None:
            self.handover(
                data.draw(st.sampled_from(self._where("sealed", lambda b: b.handed_to is None))),
                courier,
            )

        @precondition(lambda self: self._where("sealed", lambda b: b.handed_to))
        @rule(data=st.data())
        def pick_up_handed(self, data: st.DataObject) -> None:
            i = data.draw(st.sampled_from(self._where("sealed", lambda b: b.handed_to)))
            self.pickup(i, self.boxes[self.order[i]].handed_to or "")

        @precondition(lambda self: self._where("picked_up"))
        @rule(data=st.data())
        def receive_carried(self, data: st.DataObject) -> None:
            self.receive(data.draw(st.sampled_from(self._where("picked_up"))), "LA")

        @precondition(lambda self: self._where("received"))
        @rule(data=st.data(), t=st.integers(0, 7), damaged=st.booleans())
        def take_in(self, data: st.DataObject, t: int, damaged: bool) -> None:
            self.intake(data.draw(st.sampled_from(self._where("received"))), t, damaged)

        @precondition(lambda self: self._where("received", lambda b: b.scanned))
        @rule(data=st.data())
        def close_taken_in(self, data: st.DataObject) -> None:
            self.close_intake(
                data.draw(st.sampled_from(self._where("received", lambda b: b.scanned)))
            )

        @precondition(lambda self: self.last is not None)
        @rule()
        def retry_last(self) -> None:
            assert self.last is not None
            token, path, body, answer = self.last
            before = api.client.blocking_portal.call(  # type: ignore[union-attr]
                api.client.app.state.services.redis.xlen, f"{{rd:{field.round}}}:journal"
            )
            again = field.send(token, path, dict(body), op=answer["op"])
            assert again.json() == {**answer, "replayed": True}, again.text
            after = api.client.blocking_portal.call(  # type: ignore[union-attr]
                api.client.app.state.services.redis.xlen, f"{{rd:{field.round}}}:journal"
            )
            assert after == before

        # -- invariants --------------------------------------------------------------

        @invariant()
        def server_agrees(self) -> None:
            where: dict[str, str] = {}
            for code, box in self.boxes.items():
                view = field.get(f"/boxes/{code}").json()
                assert view["state"] == box.state
                assert RANK[view["state"]] >= RANK[self.seen.get(code, "open")]
                self.seen[code] = view["state"]
                contents = {c["tube"] for c in view["contents"]}
                assert contents == box.tubes
                for t in contents:
                    assert t not in where, f"{t} in {where.get(t)} and {code}"
                    where[t] = code
                if box.sealed_view is not None:
                    for k in ("contents", "tubes", "samples", "sealed_at", "sealed_by", "site"):
                        assert view[k] == box.sealed_view[k], k
            for t in self.residents:
                state = field.get(f"/tubes/{t}").json()["state"]
                assert state == ("boxed" if t in where else "closed"), t

    run_state_machine_as_test(
        Custody,
        settings=hsettings(
            max_examples=30, stateful_step_count=30, deadline=None, derandomize=True
        ),
    )
