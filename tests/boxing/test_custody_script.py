"""custody.lua and unboxed.lua called directly on the real server: the branches the API
cannot reach (a revoked device, a stale tube list, a tube record changed under a box,
an unknown kind) and the unboxed index."""

from __future__ import annotations

import struct
from typing import Any

import pytest
import redis

from sampling.auth.models import Device
from sampling.boxing import keys
from sampling.boxing.scripts import BoxAdd, BoxOpen, BoxRemove, BoxSeal, Custody, Step, Unboxed
from tests import scripts
from tests.conftest import tube

R = "r1"
BOX = "B0000000017"
SEALER = Device(id="seal1", role="sealer", site="S1")


def record(state: int, site: str = "S1", n: int = 2, closed: int = 1_700_000_000) -> bytes:
    names = f"{site}\0dev".encode()
    head = struct.pack(">BBBBII", 12 + len(names), state, 10, 0, closed - 60, closed)
    return head + names + b"".join(bytes([i] * 8) + struct.pack(">I", closed) for i in range(n))


class Paint(Custody):
    """A kind custody.lua does not know."""

    kind = "paint"


class Script:
    """custody.lua and unboxed.lua on the sync client, through Boxer's calls."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        r.hset(keys.meta(R), "state", "open")

    def __call__(
        self,
        kind: type[Custody],
        seq: int,
        *,
        tube: str = "",
        device: Device = SEALER,
        op: str = "",
        **values: Any,
    ) -> list[Any]:
        op = op or f"op{seq}"
        step = Step(device=device, round_id=R, seq=seq, op=op, box=BOX, tube=tube)
        call = kind(step=step, **values)
        reply = scripts.raw(self.r, call)
        return [x.decode() if isinstance(x, bytes) else x for x in reply]

    def unboxed(self, cursor: str, tubes: list[str]) -> int:
        return scripts.run(self.r, Unboxed(round_id=R, cursor=cursor, tubes=tubes))


@pytest.fixture
def run(r: redis.Redis) -> Script:
    return Script(r)


def test_revoked_device_changes_nothing(run: Script, r: redis.Redis) -> None:
    r.sadd(keys.revoked(R), "seal1")
    assert run(BoxOpen, 1, capacity=10, lab="", claimed=True) == ["revoked"]
    assert not r.exists(keys.box(R, BOX)) and not r.exists(keys.oplog(R, "seal1"))


def test_round_not_found_is_recorded(run: Script, r: redis.Redis) -> None:
    r.delete(keys.meta(R))
    assert run(BoxOpen, 1, capacity=10, lab="", claimed=True)[:2] == ["round_not_found", 0]
    assert run(BoxOpen, 1, capacity=10, lab="", claimed=True)[:2] == [
        "round_not_found",
        1,
    ]  # replayed
    assert r.hget(keys.count(R), "refused:round_not_found") == b"1"


def test_box_used_when_another_round_holds_the_claim(run: Script) -> None:
    assert run(BoxOpen, 1, capacity=10, lab="", claimed=False)[0] == "box_used"


def test_seal_with_a_stale_tube_list_changes_nothing(run: Script, r: redis.Redis) -> None:
    t1, t2 = tube(11), tube(12)
    r.set(keys.tube(R, t1), record(1))
    r.set(keys.tube(R, t2), record(1))
    assert run(BoxOpen, 1, capacity=10, lab="LA", claimed=True)[0] == "ok"
    assert run(BoxAdd, 2, tube=t1)[0] == "ok"
    assert run(BoxAdd, 3, tube=t2)[0] == "ok"
    ops = r.get(keys.oplog(R, "seal1"))
    assert run(BoxSeal, 4, tubes=2, samples=4, inside=[t1]) == ["box_changed"]
    assert run(BoxSeal, 4, tubes=2, samples=4, inside=[t1, tube(13)]) == ["box_changed"]
    assert r.get(keys.oplog(R, "seal1")) == ops
    assert r.hget(keys.box(R, BOX), "state") == b"open"
    assert run(BoxSeal, 4, tubes=2, samples=4, inside=[t1, t2])[:3] == ["ok", 0, "sealed"]
    # a replay answers from the op record before looking at the tube list
    assert run(BoxSeal, 4, tubes=2, samples=4, inside=[])[:3] == ["ok", 1, "sealed"]


def test_seal_refuses_a_tube_that_is_not_closed(run: Script, r: redis.Redis) -> None:
    t1 = tube(21)
    r.set(keys.tube(R, t1), record(1))
    run(BoxOpen, 1, capacity=10, lab="LA", claimed=True)
    assert run(BoxAdd, 2, tube=t1)[0] == "ok"
    assert r.getrange(keys.tube(R, t1), 1, 1) == b"\2"
    # a record reopened under the box by anything but this package's scripts
    r.setrange(keys.tube(R, t1), 1, b"\0")
    assert run(BoxSeal, 3, tubes=1, samples=2, inside=[t1])[0] == "box_has_open_tube"
    r.delete(keys.tube(R, t1))
    assert run(BoxSeal, 4, tubes=1, samples=2, inside=[t1])[0] == "box_has_open_tube"


def test_remove_of_a_tube_whose_record_is_gone(run: Script, r: redis.Redis) -> None:
    t1 = tube(31)
    r.set(keys.tube(R, t1), record(1, n=3))
    run(BoxOpen, 1, capacity=10, lab="", claimed=True)
    run(BoxAdd, 2, tube=t1)
    r.delete(keys.tube(R, t1))
    assert run(BoxRemove, 3, tube=t1, reason="dropped")[:5] == ["ok", 0, "open", 0, 0]
    assert r.zscore(keys.due(R, "unboxed"), t1) is None


def test_add_refuses_a_tube_marked_boxed_without_a_box(run: Script, r: redis.Redis) -> None:
    t1 = tube(41)
    r.set(keys.tube(R, t1), record(2))
    run(BoxOpen, 1, capacity=10, lab="", claimed=True)
    assert run(BoxAdd, 2, tube=t1)[0] == "tube_in_box"


def test_unknown_kind_is_an_error(run: Script) -> None:
    with pytest.raises(redis.ResponseError, match="unknown op kind"):
        run(Paint, 1)


def test_journal_entries_carry_box_fields(run: Script, r: redis.Redis) -> None:
    t1 = tube(51)
    r.set(keys.tube(R, t1), record(1, n=4))
    run(BoxOpen, 1, capacity=7, lab="LA", claimed=True)
    run(BoxAdd, 2, tube=t1)
    run(BoxSeal, 3, tubes=1, samples=4, inside=[t1])
    entries = [f for _, f in r.xrange(keys.journal(R))]
    assert [e[b"k"] for e in entries] == [b"box_open", b"box_add", b"box_seal"]
    assert entries[1][b"x"] == b"4" and entries[1][b"tube"] == t1.encode()
    assert entries[2][b"x"] == b"1:4" and entries[2][b"lab"] == b"LA"
    assert all(e[b"box"] == BOX.encode() and e[b"r"] == b"" for e in entries)


def test_unboxed_index_follows_tube_records(run: Script, r: redis.Redis) -> None:
    closed, reopened, gone = tube(61), tube(62), tube(63)
    r.set(keys.tube(R, closed), record(1, closed=1_700_000_100))
    r.set(keys.tube(R, reopened), record(0))
    r.zadd(keys.due(R, "unboxed"), {reopened: 1, gone: 1})
    r.zadd(keys.due(R, "open"), {closed: 1, gone: 1})
    assert run.unboxed("5-0", [closed, reopened, gone]) == 1
    assert r.zrange(keys.due(R, "unboxed"), 0, -1, withscores=True) == [
        (closed.encode(), 1_700_000_100_000.0)
    ]
    # the open index holds the open tube at its opening time, and nothing else
    assert r.zrange(keys.due(R, "open"), 0, -1, withscores=True) == [
        (reopened.encode(), 1_699_999_940_000.0)
    ]
    assert r.get(keys.due_cursor(R)) == b"5-0"
