"""After binding: the sealer boxes closed tubes, the courier carries the box, the lab
desk takes it in. Each is a resumable job like a handheld's (see ``handhelds.py``): it yields
requests, is sent answers, and can be resumed by another user with its pending
request sent again unchanged.

A device's sequence counter is shared by all its jobs (a sealer seals many
boxes), so jobs of one device run one at a time; :class:`Seq` is that counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loadtest.handhelds import Answer, Request, Resumable
from sampling import codes

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

LAB = "L1"


@dataclass
class Seq:
    n: int = 0

    def next(self) -> int:
        self.n += 1
        return self.n


class Job(Resumable):
    """A resumable script for one device."""

    role = ""

    def __init__(self, device: str, token: str, seq: Seq) -> None:
        super().__init__()
        self.device, self.token, self.seq = device, token, seq
        self.script = self._script()

    def _script(self) -> Generator[Request, Answer, None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _req(
        self, kind: str, path: str, name: str, body: dict[str, Any], box: str, tube: str = ""
    ) -> Request:
        seq = self.seq.next()
        body = {"op": f"{self.device}-{seq}", "seq": seq, **body}
        entry = {
            "d": self.device,
            "seq": seq,
            "op": body["op"],
            "k": kind,
            "b": box,
            "t": tube,
            "r": "",
        }
        return Request("POST", path, body, name, [entry], (200, 201))


class BoxJob(Job):
    """Open a box, scan the tubes in, seal it with the physical count, hand it over."""

    role = "sealer"

    def __init__(
        self,
        device: str,
        token: str,
        seq: Seq,
        box: str,
        tubes: list[tuple[str, int]],
        courier: str,
        then: Callable[[str, list[tuple[str, int]]], None],
    ) -> None:
        self.box, self.tubes, self.courier, self.then = box, tubes, courier, then
        super().__init__(device, token, seq)

    def _script(self) -> Generator[Request, Answer, None]:
        box = self.box
        ans = yield self._req("box_open", "/boxes", "box: open", {"box": box, "lab": LAB}, box)
        if ans.http != 201:
            return
        for tube, _ in self.tubes:
            yield self._req(
                "add", f"/boxes/{box}/tubes", "box: add tube", {"tube": tube}, box, tube
            )
        samples = sum(n for _, n in self.tubes)
        ans = yield self._req(
            "seal",
            f"/boxes/{box}/seal",
            "box: seal",
            {"tubes": len(self.tubes), "samples": samples},
            box,
        )
        if ans.http != 200:
            return
        ans = yield self._req(
            "handover",
            f"/boxes/{box}/handover",
            "box: handover",
            {"courier": self.courier, "lab": LAB},
            box,
        )
        if ans.http == 200:
            self.then(box, self.tubes)


class PickupJob(Job):
    role = "courier"

    def __init__(
        self,
        device: str,
        token: str,
        seq: Seq,
        box: str,
        tubes: list[tuple[str, int]],
        then: Callable[[str, list[tuple[str, int]]], None],
    ) -> None:
        self.box, self.tubes, self.then = box, tubes, then
        super().__init__(device, token, seq)

    def _script(self) -> Generator[Request, Answer, None]:
        ans = yield self._req(
            "pickup",
            f"/boxes/{self.box}/pickup",
            "box: pickup",
            {"place": "sampling point"},
            self.box,
        )
        if ans.http == 200:
            self.then(self.box, self.tubes)


class IntakeJob(Job):
    role = "lab"

    def _script_args(self, box: str, tubes: list[tuple[str, int]]) -> None:
        self.box, self.tubes = box, tubes

    def __init__(
        self,
        device: str,
        token: str,
        seq: Seq,
        box: str,
        tubes: list[tuple[str, int]],
        then: Callable[[str, list[tuple[str, int]]], None] | None = None,
    ) -> None:
        self._script_args(box, tubes)
        self.then = then
        super().__init__(device, token, seq)

    def _script(self) -> Generator[Request, Answer, None]:
        box = self.box
        ans = yield self._req("receive", f"/boxes/{box}/receive", "lab: receive", {}, box)
        if ans.http != 200:
            return
        for tube, _ in self.tubes:
            yield self._req(
                "intake", f"/boxes/{box}/intake", "lab: intake tube", {"tube": tube}, box, tube
            )
        ans = yield self._req(
            "intake_close", f"/boxes/{box}/intake/close", "lab: close intake", {}, box
        )
        if ans.http == 200 and self.then is not None:
            self.then(box, self.tubes)


class ResultsJob(Job):
    """The lab system reports the box's tubes: mostly negative, a few positive or invalid.

    Results carry no operation id: the service recognises a result sent again as a
    duplicate, so a retry after a lost answer is safe.
    """

    role = "labsys"

    def __init__(
        self, device: str, token: str, seq: Seq, box: str, tubes: list[tuple[str, int]], seed: int
    ) -> None:
        self.box, self.tubes, self.seed = box, tubes, seed
        super().__init__(device, token, seq)

    def _script(self) -> Generator[Request, Answer, None]:
        import random
        from datetime import datetime

        rng = random.Random(self.seed)
        now = datetime.now().replace(microsecond=0).isoformat()
        rows: list[dict[str, Any]] = []
        for tube, _ in self.tubes:
            row: dict[str, Any] = {"tube": tube, "outcome": "negative", "tested_at": now}
            roll = rng.random()
            if roll < 0.005:
                ct = round(rng.uniform(20, 34), 1)
                row.update(outcome="positive", ct_orf1ab=ct, ct_n=round(ct + 1.3, 1))
            elif roll < 0.008:
                row["outcome"] = "invalid"
            rows.append(row)
        seq = self.seq.next()
        entry = {
            "d": self.device,
            "seq": seq,
            "op": f"results-{self.box}",
            "k": "results",
            "b": self.box,
            "t": "",
            "r": "",
        }
        yield Request("POST", "/results", {"results": rows}, "lab system: results", [entry])


def box_code(serial: int) -> str:
    return codes.make_box(serial)
