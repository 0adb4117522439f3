"""A small field for boxing tests: a round, two sites, scanners, sealers, a courier, labs."""

from __future__ import annotations

import itertools
from typing import Any

from sampling import codes
from tests.conftest import Api, resident, tube

PROBLEM = "application/problem+json"
_tube_numbers = itertools.count(5_000)
_box_numbers = itertools.count(1)
_residents = itertools.count(1)
#: A valid tube code no test ever opens.
NEVER_BOUND = tube(99_999)


def new_box() -> str:
    return codes.make_box(next(_box_numbers))


def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["code"] == code, body
    assert " " in body["detail"].strip()
    return body


class Field:
    """Devices by role (tokens), and helpers that send one op each with a fresh seq."""

    def __init__(self, api: Api, round_id: str = "r1") -> None:
        self.api = api
        self.round = round_id
        api.round(round_id)
        api.site("S1")
        api.site("S2")
        self.scanner = {s: api.device(f"scan-{s}", site=s) for s in ("S1", "S2")}
        self.sealer = api.device("seal-S1", role="sealer", site="S1")
        self.sealer2 = api.device("seal-S2", role="sealer", site="S2")
        self.courier = api.device("courier1", role="courier")
        self.courier2 = api.device("courier2", role="courier")
        self.lab = api.device("lab-A", role="lab", lab="LA")
        self.lab_b = api.device("lab-B", role="lab", lab="LB")
        self.viewer = api.device("viewer1", role="viewer")
        self.seqs: dict[str, int] = {}

    def seq(self, token: str) -> int:
        self.seqs[token] = self.seqs.get(token, 0) + 1
        return self.seqs[token]

    def tube(self, site: str = "S1", n: int = 3, close: bool = True) -> str:
        """A tube of ``site`` with ``n`` residents, closed by hand unless told not to."""
        code = tube(next(_tube_numbers))
        tok = self.scanner[site]
        assert self.api.open(tok, code, self.round).status_code == 201
        for _ in range(n):
            resp = self.api.scan(tok, code, resident(next(_residents)), self.round)
            assert resp.status_code == 200, resp.text
        if close:
            seq = self.api.next_seq(tok)
            resp = self.api.post(
                f"/v1/rounds/{self.round}/tubes/{code}/close", tok, {"op": f"op-{seq}", "seq": seq}
            )
            assert resp.status_code == 200, resp.text
        return code

    def send(self, token: str, path: str, body: dict[str, Any], op: str | None = None) -> Any:
        seq = body.pop("seq") if "seq" in body else self.seq(token)
        payload = {"op": op or f"op-{seq}", "seq": seq, **body}
        return self.api.post(f"/v1/rounds/{self.round}{path}", token, payload)

    def open(self, box: str, token: str | None = None, **kw: Any) -> Any:
        return self.send(token or self.sealer, "/boxes", {"box": box, **kw})

    def add(self, box: str, tube_code: str, token: str | None = None, **kw: Any) -> Any:
        return self.send(token or self.sealer, f"/boxes/{box}/tubes", {"tube": tube_code, **kw})

    def remove(self, box: str, tube_code: str, reason: str = "cracked", **kw: Any) -> Any:
        token = kw.pop("token", None) or self.sealer
        return self.send(token, f"/boxes/{box}/tubes/{tube_code}/remove", {"reason": reason, **kw})

    def seal(self, box: str, tubes: int, samples: int, token: str | None = None, **kw: Any) -> Any:
        body = {"tubes": tubes, "samples": samples, **kw}
        return self.send(token or self.sealer, f"/boxes/{box}/seal", body)

    def handover(
        self, box: str, courier: str = "courier1", token: str | None = None, **kw: Any
    ) -> Any:
        return self.send(token or self.sealer, f"/boxes/{box}/handover", {"courier": courier, **kw})

    def pickup(self, box: str, token: str | None = None, **kw: Any) -> Any:
        return self.send(token or self.courier, f"/boxes/{box}/pickup", {"place": "S1 gate", **kw})

    def receive(self, box: str, token: str | None = None, **kw: Any) -> Any:
        return self.send(token or self.lab, f"/boxes/{box}/receive", dict(kw))

    def intake(
        self, box: str, tube_code: str, condition: str = "ok", token: str | None = None, **kw: Any
    ) -> Any:
        body = {"tube": tube_code, "condition": condition, **kw}
        return self.send(token or self.lab, f"/boxes/{box}/intake", body)

    def close_intake(self, box: str, token: str | None = None, **kw: Any) -> Any:
        return self.send(token or self.lab, f"/boxes/{box}/intake/close", dict(kw))

    def get(self, path: str, token: str | None = None) -> Any:
        return self.api.get(f"/v1/rounds/{self.round}{path}", token or self.api.admin)

    def sealed_box(self, tubes: int = 2, n: int = 3, lab: str = "LA") -> tuple[str, list[str]]:
        box = new_box()
        assert self.open(box).status_code == 201
        inside = [self.tube(n=n) for _ in range(tubes)]
        for t in inside:
            assert self.add(box, t).status_code == 200
        resp = self.seal(box, tubes, tubes * n, lab=lab)
        assert resp.status_code == 200, resp.text
        return box, inside

    def delivered(self, tubes: int = 2, n: int = 3) -> tuple[str, list[str]]:
        """A box sealed, handed over, picked up and received at lab LA."""
        box, inside = self.sealed_box(tubes, n)
        assert self.handover(box).status_code == 200
        assert self.pickup(box).status_code == 200
        assert self.receive(box).status_code == 200
        return box, inside


def seal_outcome(state: str, tubes: int, dt: int, ds: int) -> str:
    """What sealing a box should answer: the model both state machines share."""
    if state != "open":
        return "box_sealed"
    if not tubes:
        return "box_empty"
    if dt:
        return "tube_count_mismatch"
    if ds:
        return "sample_count_mismatch"
    return "ok"
