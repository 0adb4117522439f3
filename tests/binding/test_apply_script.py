"""apply.lua, claim.lua and settle.lua called directly on the real server, every branch.

KEYS and ARGV are laid out by the calls ``Binder`` runs (``sampling.binding.scripts``);
resident hashes are arbitrary 8-byte strings (the script never sees a resident code).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from sampling import codes
from sampling.binding import keys
from sampling.binding import scripts as bs
from sampling.binding.scripts import SEQ_AHEAD, SEQ_MAX
from sampling.binding.tube import TubeRecord
from sampling.boxing import keys as boxing_keys
from sampling.lab import keys as lab_keys
from sampling.oplog import fingerprint
from tests import scripts
from tests.binding import snapshot

R = "r1"
STATUS = (
    "ok",
    "round_closed",
    "round_not_found",
    "tube_used",
    "tube_not_found",
    "tube_other_site",
    "tube_closed",
    "tube_full",
    "tube_empty",
    "resident_already_sampled",
    "risk_needs_single_tube",
    "undo_not_last",
    "resample_without_binding",
    "tube_boxed",
)


def rh(n: int) -> bytes:
    """A resident hash; residents 1..255 share neither resident nor risk bucket."""
    return bytes([n, n]) + b"\xa0\x01\x02\x03\x04" + bytes([n])


def tc(n: int) -> str:
    return codes.make_tube(n)


@dataclass(frozen=True)
class Op:
    seq: int
    kind: str
    tube: int
    res: bytes = b""
    cap: int = 0
    claim: int = 1
    purpose: int = 0
    op_id: str = ""
    salt: bytes = b""  # changes the payload hash only
    clock: str = ""  # device time in ms, '' (none) or 'u' (untrusted)

    @property
    def oid(self) -> str:
        return self.op_id or f"op-{self.seq}"

    def fp(self) -> bytes:
        payload = f"{self.kind}|{tc(self.tube)}|{self.cap}|{self.purpose}|".encode()
        return fingerprint(self.oid, payload + self.res + self.salt)


@dataclass(frozen=True)
class Res:
    status: str
    count: int
    closed: int
    replayed: int


class Apply:
    """apply.lua, claim.lua and settle.lua on the sync client, through Binder's calls."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    def raw(self, ops: list[Op], **kw: Any) -> list[bytes]:
        return list(scripts.raw(self.r, self.call(ops, **kw)))

    @staticmethod
    def call(
        ops: list[Op],
        device: str = "d1",
        site: str = "S1",
        ahead: int = SEQ_AHEAD,
        seq_max: int = SEQ_MAX,
        round_id: str = R,
    ) -> bs.Apply:
        return bs.Apply(
            round_id,
            device,
            site,
            [
                bs.ApplyOp(
                    seq=o.seq,
                    fingerprint=o.fp(),
                    op=o.oid,
                    kind=o.kind,
                    tube=tc(o.tube),
                    capacity=o.cap,
                    claim=bool(o.claim),
                    purpose=o.purpose,
                    rhash=o.res,
                    clock=o.clock,
                )
                for o in ops
            ],
            ahead=ahead,
            seq_max=seq_max,
        )

    def __call__(self, ops: list[Op], **kw: Any) -> list[Res]:
        call = self.call(ops, **kw)
        reply = list(scripts.raw(self.r, call))
        assert reply[:1] != [b"revoked"]
        return [
            Res(o.status, o.aux, int(o.closed), int(o.replayed)) for o in call.decode(reply).ops
        ]

    def claim(self, tube: str, round_id: str, nonce: str | None = None) -> int:
        return scripts.run(self.r, bs.Claim.of_tube(tube, round_id, nonce))

    def settle(self, tube: str, round_id: str, nonce: str, accepted: str) -> bool:
        call = bs.Settle.of_tube(tube, round_id, nonce, accepted=accepted == "1")
        return scripts.run(self.r, call)

    def one(self, op: Op, **kw: Any) -> Res:
        (res,) = self([op], **kw)
        return res

    # -- reading state back --------------------------------------------------

    def tube(self, n: int) -> TubeRecord:
        raw = self.r.get(keys.tube(R, tc(n)))
        assert raw is not None
        return TubeRecord(raw)

    def counters(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.r.hgetall(keys.count(R)).items()}

    def journal(self) -> list[dict[str, str]]:
        return [
            {k.decode(): v.decode("latin-1") for k, v in f.items()}
            for _, f in self.r.xrange(keys.journal(R))
        ]

    def record(self, seq: int, device: str = "d1") -> bytes:
        raw: bytes = self.r.getrange(keys.oplog(R, device), (seq - 1) * 8, seq * 8 - 1)
        return raw

    def bound(self, res: bytes, resample: bool = False) -> bytes | None:
        field = (b"r" if resample else b"") + res[2:]
        got: bytes | None = self.r.hget(keys.resident_bucket(R, res), field)
        return got


@pytest.fixture
def ap(r: redis.Redis) -> Iterator[Apply]:
    r.hset(keys.meta(R), mapping={"state": "open", "pool": 10})
    yield Apply(r)


class Seq:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


@pytest.fixture
def s() -> Seq:
    return Seq()


def ok(res: Res, count: int = 0, closed: int = 0) -> None:
    assert res == Res("ok", count, closed, 0)


def refused(res: Res, status: str) -> None:
    assert res.status == status, res
    assert res.replayed == 0


# -- device and round ------------------------------------------------------------


def test_revoked_device_changes_nothing(ap: Apply, r: redis.Redis) -> None:
    r.sadd(keys.revoked(R), "d1")
    before = snapshot(r)
    assert ap.raw([Op(1, "open", 1, cap=5)]) == [b"revoked"]
    assert snapshot(r) == before
    # another device of the same round is not affected
    ok(ap.one(Op(1, "open", 1, cap=5), device="d2"))


def test_round_not_found_writes_nothing(ap: Apply, r: redis.Redis) -> None:
    before = snapshot(r)
    ops = [Op(1, "open", 1, cap=5), Op(2, "scan", 1, rh(1)), Op(3, "close", 1)]
    assert ap.raw(ops, round_id="nope") == [b"round_not_found"]
    assert snapshot(r) == before


def test_round_closed_refuses_every_kind(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    r.hset(keys.meta(R), "state", "closed")
    for op in (
        Op(s(), "open", 2, cap=5),
        Op(s(), "scan", 1, rh(2)),
        Op(s(), "undo", 1, rh(1)),
        Op(s(), "close", 1),
    ):
        refused(ap.one(op), "round_closed")
    assert ap.counters()["refused:round_closed"] == 4
    assert len(ap.tube(1).members) == 1
    assert ap.tube(1).state == "open"
    assert len(ap.journal()) == 2


# -- open --------------------------------------------------------------------------


def test_open_ok(ap: Apply, r: redis.Redis) -> None:
    ok(ap.one(Op(1, "open", 7, cap=10)))
    t = ap.tube(7)
    assert (t.state, t.capacity, t.purpose, t.site, t.device) == ("open", 10, "pool", "S1", "d1")
    assert t.members == []
    assert t.closed_at == 0
    assert t.opened_at > 1_600_000_000
    assert ap.counters() == {"tubes_opened": 1}
    (entry,) = ap.journal()
    assert entry == {
        "k": "open",
        "d": "d1",
        "site": "S1",
        "seq": "1",
        "op": "op-1",
        "tube": tc(7),
        "r": "",
        "x": "10:0",
    }


def test_open_claimed_by_another_round_is_tube_used(ap: Apply, r: redis.Redis) -> None:
    before = snapshot(r)
    res = ap.one(Op(1, "open", 1, cap=5, claim=0))
    refused(res, "tube_used")
    assert not r.exists(keys.tube(R, tc(1)))
    assert ap.counters() == {"refused:tube_used": 1}
    assert ap.journal() == []
    changed = {k for k in snapshot(r) if snapshot(r)[k] != before.get(k)}
    # The refusal is recorded (op record, counter) and so is the device's activity.
    assert changed == {
        keys.count(R).encode(),
        keys.oplog(R, "d1").encode(),
        keys.devices_seen(R).encode(),
        keys.devices_site(R).encode(),
    }


def test_open_existing_tube_is_tube_used(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    rec = r.get(keys.tube(R, tc(1)))
    refused(ap.one(Op(s(), "open", 1, cap=10)), "tube_used")
    refused(ap.one(Op(1, "open", 1, cap=10), device="d2", site="S2"), "tube_used")
    assert r.get(keys.tube(R, tc(1))) == rec
    assert ap.counters()["tubes_opened"] == 1
    assert ap.counters()["refused:tube_used"] == 2


def test_open_resample_tube(ap: Apply) -> None:
    ok(ap.one(Op(1, "open", 3, cap=1, purpose=1)))
    t = ap.tube(3)
    assert (t.capacity, t.purpose) == (1, "resample")
    assert ap.journal()[0]["x"] == "1:1"


# -- scan ------------------------------------------------------------------------


def test_scan_ok(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    ok(ap.one(Op(s(), "scan", 1, rh(2))), 2)
    t = ap.tube(1)
    assert [m[0] for m in t.members] == [rh(1), rh(2)]
    assert t.state == "open"
    assert ap.bound(rh(1)) == b"1"
    assert ap.bound(rh(2)) == b"1"
    assert ap.counters() == {"tubes_opened": 1, "bound": 2}
    scans = [e for e in ap.journal() if e["k"] == "scan"]
    assert [(e["r"].encode("latin-1"), e["x"], e["seq"]) for e in scans] == [
        (rh(1), "1", "2"),
        (rh(2), "2", "3"),
    ]


def test_scan_autocloses_at_capacity(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    for i in range(1, 5):
        ok(ap.one(Op(s(), "scan", 1, rh(i))), i)
    before = len(ap.journal())
    ok(ap.one(Op(s(), "scan", 1, rh(5))), 5, closed=1)
    t = ap.tube(1)
    assert t.state == "closed"
    assert t.closed_at >= t.opened_at > 0
    assert len(t.members) == 5
    entries = ap.journal()[before:]
    assert [e["k"] for e in entries] == ["scan", "close"]
    assert entries[1]["x"] == "5:full"
    assert entries[1]["seq"] == entries[0]["seq"] == "6"
    assert ap.counters()["tubes_closed"] == 1
    refused(ap.one(Op(s(), "scan", 1, rh(6))), "tube_closed")


def test_single_tube_closes_on_first_scan(ap: Apply) -> None:
    ok(ap.one(Op(1, "open", 1, cap=1)))
    ok(ap.one(Op(2, "scan", 1, rh(1))), 1, closed=1)
    assert [e["k"] for e in ap.journal()] == ["open", "scan", "close"]


def test_scan_tube_not_found(ap: Apply, r: redis.Redis) -> None:
    res = ap.one(Op(1, "scan", 9, rh(1)))
    assert res == Res("tube_not_found", 0, 0, 0)
    assert not r.exists(keys.tube(R, tc(9)))
    assert ap.bound(rh(1)) is None


def test_tube_other_site_refuses_every_kind(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    other = Seq()
    for op in (
        Op(other(), "scan", 1, rh(2)),
        Op(other(), "undo", 1, rh(1)),
        Op(other(), "close", 1),
    ):
        refused(ap.one(op, device="d2", site="S2"), "tube_other_site")
    assert len(ap.tube(1).members) == 1
    assert ap.tube(1).state == "open"
    # a second device at the same site may scan into it
    ok(ap.one(Op(1, "scan", 1, rh(3)), device="d3", site="S1"), 2)


def test_scan_into_closed_tube(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    ok(ap.one(Op(s(), "close", 1)), 1, closed=1)
    assert ap.one(Op(s(), "scan", 1, rh(2))) == Res("tube_closed", 1, 1, 0)
    assert ap.bound(rh(2)) is None


def test_tube_full_only_with_an_open_full_record(ap: Apply, r: redis.Redis, s: Seq) -> None:
    """A full tube is always closed by the script itself; tube_full is the guard for
    a record that says open while full (state byte forced back to 0)."""
    ok(ap.one(Op(s(), "open", 1, cap=1)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1, closed=1)
    r.setrange(keys.tube(R, tc(1)), 1, b"\x00")
    assert ap.one(Op(s(), "scan", 1, rh(2))) == Res("tube_full", 1, 1, 0)
    assert len(ap.tube(1).members) == 1
    assert ap.bound(rh(2)) is None


def test_resident_already_sampled(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "open", 2, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    assert ap.one(Op(s(), "scan", 1, rh(1))) == Res("resident_already_sampled", 1, 0, 0)
    assert ap.one(Op(s(), "scan", 2, rh(1))) == Res("resident_already_sampled", 0, 0, 0)
    # by another device, at another site, into its own tube
    ok(ap.one(Op(1, "open", 3, cap=5), device="d2", site="S2"))
    refused(ap.one(Op(2, "scan", 3, rh(1)), device="d2", site="S2"), "resident_already_sampled")
    assert ap.bound(rh(1)) == b"1"
    assert [len(ap.tube(n).members) for n in (1, 2, 3)] == [1, 0, 0]
    assert ap.counters()["refused:resident_already_sampled"] == 3
    assert ap.counters()["bound"] == 1


def test_same_bucket_different_resident(ap: Apply, s: Seq) -> None:
    a, b = b"\x01\x01" + b"A" * 6, b"\x01\x01" + b"B" * 6
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, a)), 1)
    ok(ap.one(Op(s(), "scan", 1, b)), 2)


def _flag(r: redis.Redis, res: bytes, flags: str = "Y") -> None:
    r.hset(keys.risk_bucket(R, res), res[1:], flags)


def test_risk_resident_needs_single_tube(ap: Apply, r: redis.Redis, s: Seq) -> None:
    _flag(r, rh(1))
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    assert ap.one(Op(s(), "scan", 1, rh(1))) == Res("risk_needs_single_tube", 0, 0, 0)
    assert ap.bound(rh(1)) is None
    assert ap.tube(1).members == []
    # a resident sharing the risk bucket but not flagged is fine
    neighbour = bytes([1, 9]) + rh(1)[2:]
    assert keys.risk_bucket(R, neighbour) == keys.risk_bucket(R, rh(1))
    ok(ap.one(Op(s(), "scan", 1, neighbour)), 1)
    ok(ap.one(Op(s(), "open", 2, cap=1)))
    ok(ap.one(Op(s(), "scan", 2, rh(1))), 1, closed=1)
    assert ap.bound(rh(1)) == b"2"
    assert ap.counters()["refused:risk_needs_single_tube"] == 1


# -- re-sample -------------------------------------------------------------------


def test_resample_without_binding(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=1, purpose=1)))
    assert ap.one(Op(s(), "scan", 1, rh(1))) == Res("resample_without_binding", 0, 0, 0)
    assert ap.bound(rh(1), resample=True) is None
    assert ap.tube(1).members == []


def test_resample_ok_and_once(ap: Apply, r: redis.Redis, s: Seq) -> None:
    _flag(r, rh(1), "R")
    ok(ap.one(Op(s(), "open", 1, cap=1)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1, closed=1)
    ok(ap.one(Op(s(), "open", 2, cap=1, purpose=1)))
    ok(ap.one(Op(s(), "scan", 2, rh(1))), 1, closed=1)
    assert ap.bound(rh(1)) == b"1"
    assert ap.bound(rh(1), resample=True) == tc(2).encode()
    assert r.hkeys(keys.resident_bucket(R, rh(1))) == [rh(1)[2:], b"r" + rh(1)[2:]]
    assert ap.counters()["bound"] == 1
    assert ap.counters()["resampled"] == 1
    ok(ap.one(Op(s(), "open", 3, cap=1, purpose=1)))
    assert ap.one(Op(s(), "scan", 3, rh(1))).status == "resident_already_sampled"


def test_resample_again_only_after_a_failed_attempt(ap: Apply, r: redis.Redis, s: Seq) -> None:
    """Attempt 2 needs attempt 1 invalid; attempt 3 needs attempt 2 lost at intake;
    a result decides over a lost mark, and a negative attempt ends the chain."""
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    for t in (2, 3, 4, 5):
        ok(ap.one(Op(s(), "open", t, cap=1, purpose=1)))
    ok(ap.one(Op(s(), "scan", 2, rh(1))), 1, closed=1)
    # attempt 1 has no result yet: no second attempt
    assert ap.one(Op(s(), "scan", 3, rh(1))).status == "resident_already_sampled"
    r.hset(lab_keys.result(R), tc(2), "negative||||1")
    assert ap.one(Op(s(), "scan", 3, rh(1))).status == "resident_already_sampled"
    r.hset(lab_keys.result(R), tc(2), "invalid||||1")
    ok(ap.one(Op(s(), "scan", 3, rh(1))), 1, closed=1)
    assert ap.bound(rh(1), resample=True) == tc(3).encode()
    # attempt 2 (tube 3) missing at intake: attempt 3 may be bound
    assert ap.one(Op(s(), "scan", 4, rh(1))).status == "resident_already_sampled"
    r.hset(boxing_keys.lost(R), tc(3), "missing")
    ok(ap.one(Op(s(), "scan", 4, rh(1))), 1, closed=1)
    # attempt 3 lost, but a result came after all: the result decides
    r.hset(boxing_keys.lost(R), tc(4), "damaged")
    r.hset(lab_keys.result(R), tc(4), "positive|20|21|L1|1")
    assert ap.one(Op(s(), "scan", 5, rh(1))).status == "resident_already_sampled"
    assert ap.counters()["resampled"] == 3
    scans = [e["tube"] for e in ap.journal() if e["k"] == "scan"]
    assert scans == [tc(1), tc(2), tc(3), tc(4)]


# -- undo ------------------------------------------------------------------------


def test_undo_empty_tube(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    assert ap.one(Op(s(), "undo", 1, b"\0" * 8)) == Res("tube_empty", 0, 0, 0)
    assert ap.one(Op(s(), "undo", 9, rh(1))).status == "tube_not_found"


def test_undo_not_last(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    ok(ap.one(Op(s(), "scan", 1, rh(2))), 2)
    assert ap.one(Op(s(), "undo", 1, rh(1))) == Res("undo_not_last", 2, 0, 0)
    assert [m[0] for m in ap.tube(1).members] == [rh(1), rh(2)]
    assert ap.bound(rh(1)) == b"1"


def test_undo_reopens_closed_tube(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    for i in range(1, 6):
        ap.one(Op(s(), "scan", 1, rh(i)))
    assert ap.tube(1).state == "closed"
    assert ap.counters() == {"tubes_opened": 1, "bound": 5, "tubes_closed": 1}
    nj = len(ap.journal())
    ok(ap.one(Op(s(), "undo", 1, rh(5))), 4)
    t = ap.tube(1)
    assert (t.state, t.closed_at, len(t.members)) == ("open", 0, 4)
    assert ap.bound(rh(5)) is None
    assert ap.counters() == {"tubes_opened": 1, "bound": 4, "tubes_closed": 0, "undone": 1}
    (entry,) = ap.journal()[nj:]
    assert (entry["k"], entry["r"].encode("latin-1"), entry["x"]) == ("undo", rh(5), "4")
    # the undone resident may be scanned again, here or elsewhere
    ok(ap.one(Op(s(), "scan", 1, rh(5))), 5, closed=1)
    # undo a tube closed by hand, then undo down to empty
    ok(ap.one(Op(s(), "open", 2, cap=10)))
    ok(ap.one(Op(s(), "scan", 2, rh(7))), 1)
    ok(ap.one(Op(s(), "close", 2)), 1, closed=1)
    ok(ap.one(Op(s(), "undo", 2, rh(7))), 0)
    assert ap.tube(2).state == "open"
    assert ap.one(Op(s(), "undo", 2, rh(7))).status == "tube_empty"


def test_undo_resample_binding(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    ok(ap.one(Op(s(), "open", 2, cap=1, purpose=1)))
    ok(ap.one(Op(s(), "scan", 2, rh(1))), 1, closed=1)
    ok(ap.one(Op(s(), "undo", 2, rh(1))), 0)
    assert ap.bound(rh(1)) == b"1"
    assert ap.bound(rh(1), resample=True) is None
    assert ap.counters()["resampled"] == 0
    assert ap.counters()["bound"] == 1


def test_boxed_tube_refuses_every_kind(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    ok(ap.one(Op(s(), "close", 1)), 1, closed=1)
    r.setrange(keys.tube(R, tc(1)), 1, b"\x02")
    assert ap.tube(1).state == "boxed"
    rec = r.get(keys.tube(R, tc(1)))
    for op in (Op(s(), "undo", 1, rh(1)), Op(s(), "scan", 1, rh(2)), Op(s(), "close", 1)):
        refused(ap.one(op), "tube_boxed")
    assert r.get(keys.tube(R, tc(1))) == rec
    assert ap.bound(rh(1)) == b"1"
    assert ap.counters()["refused:tube_boxed"] == 3


# -- close -----------------------------------------------------------------------


def test_close(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=10)))
    assert ap.one(Op(s(), "close", 1)) == Res("tube_empty", 0, 0, 0)
    ok(ap.one(Op(s(), "scan", 1, rh(1))), 1)
    ok(ap.one(Op(s(), "scan", 1, rh(2))), 2)
    nj = len(ap.journal())
    ok(ap.one(Op(s(), "close", 1)), 2, closed=1)
    t = ap.tube(1)
    assert t.state == "closed"
    assert t.closed_at > 0
    (entry,) = ap.journal()[nj:]
    assert (entry["k"], entry["x"]) == ("close", "2:hand")
    assert ap.one(Op(s(), "close", 1)) == Res("tube_closed", 2, 1, 0)
    assert ap.one(Op(s(), "close", 9)).status == "tube_not_found"
    assert ap.counters()["tubes_closed"] == 1


# -- the op record: replay, reuse, conflicts, range ----------------------------------


def _busy_round(ap: Apply, s: Seq) -> list[Op]:
    ops = [
        Op(s(), "open", 1, cap=5),
        Op(s(), "scan", 1, rh(1)),
        Op(s(), "scan", 1, rh(1)),  # refused: already sampled
        Op(s(), "scan", 9, rh(2)),  # refused: no tube
        Op(s(), "open", 2, cap=1),
        Op(s(), "scan", 2, rh(3)),  # ok, closes
        Op(s(), "undo", 1, rh(1)),
        Op(s(), "close", 1),  # refused: empty
    ]
    ap(ops)
    return ops


def test_replay_answers_the_same_and_changes_nothing(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ops = _busy_round(ap, s)
    first = [ap.one(o) for o in ops]  # every one is a replay already
    assert all(x.replayed == 1 for x in first)
    before = snapshot(r)
    again = ap(ops)
    assert snapshot(r) == before
    assert again == first
    assert [(x.status, x.count, x.closed) for x in again] == [
        ("ok", 0, 0),
        ("ok", 1, 0),
        ("resident_already_sampled", 1, 0),
        ("tube_not_found", 0, 0),
        ("ok", 0, 0),
        ("ok", 1, 1),
        ("ok", 0, 0),
        ("tube_empty", 0, 0),
    ]


def test_replay_answers_from_record_not_state(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ok(ap.one(Op(s(), "open", 1, cap=5)))
    scan = Op(s(), "scan", 1, rh(1))
    ok(ap.one(scan), 1)
    ok(ap.one(Op(s(), "undo", 1, rh(1))), 0)
    before = snapshot(r)
    assert ap.one(scan) == Res("ok", 1, 0, 1)
    assert snapshot(r) == before
    assert ap.tube(1).members == []


def test_operation_reused_changes_nothing(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ops = _busy_round(ap, s)
    before = snapshot(r)
    for o in ops:
        changed = Op(o.seq, o.kind, o.tube, o.res, o.cap, o.claim, o.purpose, salt=b"x")
        assert ap.one(changed) == Res("operation_reused", 0, 0, 0)
    moved = Op(ops[1].seq, "scan", 2, rh(4))  # same op id, another tube and resident
    assert ap.one(moved).status == "operation_reused"
    assert snapshot(r) == before


def test_seq_conflict_changes_nothing(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ops = _busy_round(ap, s)
    before = snapshot(r)
    for o in ops:
        other = Op(o.seq, o.kind, o.tube, o.res, o.cap, o.claim, o.purpose, op_id="other")
        assert ap.one(other) == Res("seq_conflict", 0, 0, 0)
    assert snapshot(r) == before


@pytest.mark.parametrize(
    ("seq", "ahead", "seq_max"),
    [
        (0, SEQ_AHEAD, SEQ_MAX),
        (-1, SEQ_AHEAD, SEQ_MAX),
        (8 + 101, 100, SEQ_MAX),  # past the highest (8) + ahead
        (SEQ_MAX + 1, 10 * SEQ_MAX, SEQ_MAX),
    ],
)
def test_seq_out_of_range_changes_nothing(
    ap: Apply, r: redis.Redis, s: Seq, seq: int, ahead: int, seq_max: int
) -> None:
    _busy_round(ap, s)
    before = snapshot(r)
    res = ap.one(Op(seq, "open", 50, cap=5), ahead=ahead, seq_max=seq_max)
    assert res == Res("seq_out_of_range", 0, 0, 0)
    assert snapshot(r) == before


def test_seq_ahead_is_measured_from_the_highest(ap: Apply, s: Seq) -> None:
    ok(ap.one(Op(1, "open", 1, cap=5), ahead=3))
    ok(ap.one(Op(4, "scan", 1, rh(1)), ahead=3), 1)
    assert ap.one(Op(8, "scan", 1, rh(2)), ahead=3).status == "seq_out_of_range"
    ok(ap.one(Op(7, "scan", 1, rh(2)), ahead=3), 2)
    # a gap below the highest may be filled later
    ok(ap.one(Op(2, "scan", 1, rh(3)), ahead=3), 3)
    # in one call, the highest moves with each op
    res = ap([Op(10, "scan", 1, rh(4)), Op(13, "scan", 1, rh(5))], ahead=3)
    assert [x.status for x in res] == ["ok", "ok"]


def test_refusals_are_recorded(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ops = _busy_round(ap, s)
    assert ap.counters() == {
        "tubes_opened": 2,
        "bound": 1,
        "refused:resident_already_sampled": 1,
        "refused:tube_not_found": 1,
        "tubes_closed": 1,
        "undone": 1,
        "refused:tube_empty": 1,
    }
    expected = [
        ("ok", 0, 0),
        ("ok", 1, 0),
        ("resident_already_sampled", 1, 0),
        ("tube_not_found", 0, 0),
        ("ok", 0, 0),
        ("ok", 1, 1),
        ("ok", 0, 0),
        ("tube_empty", 0, 0),
    ]
    assert r.strlen(keys.oplog(R, "d1")) == 8 * len(ops)
    for o, (status, aux, closed) in zip(ops, expected, strict=True):
        rec = ap.record(o.seq)
        assert rec[:6] == o.fp()
        assert STATUS[rec[6] - 1] == status
        assert rec[7] == aux + 128 * closed


def test_gaps_stay_zero_in_the_op_log(ap: Apply, r: redis.Redis) -> None:
    ok(ap.one(Op(1, "open", 1, cap=5)))
    ok(ap.one(Op(4, "scan", 1, rh(1))), 1)
    raw = r.get(keys.oplog(R, "d1"))
    assert raw is not None
    assert len(raw) == 32
    assert raw[8:24] == b"\0" * 16


def test_one_journal_entry_per_accepted_change(ap: Apply, r: redis.Redis, s: Seq) -> None:
    ops = [
        Op(s(), "open", 1, cap=5),
        *[Op(s(), "scan", 1, rh(i)) for i in range(1, 6)],  # last auto-closes: 2 entries
        Op(s(), "scan", 1, rh(6)),  # closed
        Op(s(), "undo", 1, rh(5)),
        Op(s(), "undo", 1, rh(1)),  # not last
        Op(s(), "close", 1),
        Op(s(), "close", 1),  # closed
        Op(s(), "open", 1, cap=5),  # used
        Op(s(), "scan", 1, rh(1)),  # closed / already
        Op(s(), "open", 2, cap=1),
        Op(s(), "scan", 2, rh(6)),  # auto-closes: 2 entries
    ]
    res = ap(ops)
    accepted = sum(x.status == "ok" for x in res)
    autoclosed = sum(
        x.status == "ok" and o.kind == "scan" and x.closed for o, x in zip(ops, res, strict=True)
    )
    assert autoclosed == 2
    entries = ap.journal()
    assert len(entries) == accepted + autoclosed
    # each accepted op has its entry, in order, naming its seq
    assert [int(e["seq"]) for e in entries if e["k"] != "close" or e["x"].endswith("hand")] == [
        o.seq for o, x in zip(ops, res, strict=True) if x.status == "ok"
    ]
    ap(ops)  # all replays
    assert len(ap.journal()) == len(entries)


def test_unknown_kind_is_an_error_reply(ap: Apply, r: redis.Redis) -> None:
    ok(ap.one(Op(1, "open", 1, cap=5)))
    before = snapshot(r)
    with pytest.raises(redis.ResponseError):
        ap.one(Op(2, "frobnicate", 1))
    assert snapshot(r) == before


def test_malformed_op_mid_batch_changes_nothing(ap: Apply, r: redis.Redis) -> None:
    ok(ap.one(Op(1, "open", 1, cap=5)))
    before = snapshot(r)
    with pytest.raises(redis.ResponseError):
        ap([Op(2, "scan", 1, rh(1)), Op(3, "frobnicate", 1)])
    assert snapshot(r) == before


def test_tube_record_layout(ap: Apply, r: redis.Redis) -> None:
    ok(ap.one(Op(1, "open", 1, cap=5), site="S12", device="dev-7"))
    ok(ap.one(Op(1, "scan", 1, rh(1)), site="S12", device="dev-8"), 1)
    raw = r.get(keys.tube(R, tc(1)))
    assert raw is not None
    hl = raw[0]
    assert raw[12:hl] == b"S12\0dev-7"
    assert len(raw) == hl + 12
    assert raw[hl : hl + 8] == rh(1)
    (when,) = struct.unpack(">I", raw[hl + 8 :])
    assert when >= ap.tube(1).opened_at


# -- claim.lua -------------------------------------------------------------------


def test_claim(ap: Apply, r: redis.Redis) -> None:
    key = keys.tube_claim(tc(1))
    assert ap.claim(tc(1), "r1", "n1") == 2  # taken now: pending
    assert r.hgetall(key) == {tc(1).encode(): b"r1", b"p:" + tc(1).encode(): b"n1"}
    assert ap.claim(tc(1), "r1", "n2") == 1  # its own round again: joined
    assert r.hgetall(key) == {tc(1).encode(): b"r1"}
    before = snapshot(r)
    assert ap.claim(tc(1), "r2", "n3") == 0
    assert snapshot(r) == before
    # a neighbour tube in the same claim hash is independent
    assert keys.tube_claim(tc(1001)) == key
    assert ap.claim(tc(1001), "r2", "n4") == 2
    assert r.hget(key, tc(1001)) == b"r2"
    assert r.hget(key, tc(1)) == b"r1"


def test_settle_keeps_an_accepted_claim(ap: Apply, r: redis.Redis) -> None:
    key = keys.tube_claim(tc(1))
    assert ap.claim(tc(1), "r1", "n1") == 2
    assert ap.settle(tc(1), "r1", "n1", "1") == 0
    assert r.hgetall(key) == {tc(1).encode(): b"r1"}  # the pending mark is gone
    # Nobody can release it any more, not even with the nonce that took it.
    assert ap.settle(tc(1), "r1", "n1", "0") == 0
    assert r.hgetall(key) == {tc(1).encode(): b"r1"}


def test_settle_releases_a_refused_claim_of_this_request_only(ap: Apply, r: redis.Redis) -> None:
    key = keys.tube_claim(tc(1))
    r.hset(key, tc(1001), "r0")  # a neighbour's claim in the same hash stays
    before = snapshot(r)
    assert ap.claim(tc(1), "r1", "n1") == 2
    # another request's nonce, or another round, releases nothing
    assert ap.settle(tc(1), "r1", "n9", "0") == 0
    assert ap.settle(tc(1), "r2", "n1", "0") == 0
    assert r.hget(key, tc(1)) == b"r1"
    assert ap.settle(tc(1), "r1", "n1", "0") == 1
    assert snapshot(r) == before
    assert ap.claim(tc(1), "r2", "n2") == 2  # free for another round


def test_settle_never_drops_a_claim_another_open_joined(ap: Apply, r: redis.Redis) -> None:
    """A takes the claim, B (same round) joins and is accepted, A is refused: the claim stays."""
    key = keys.tube_claim(tc(1))
    assert ap.claim(tc(1), "r1", "A") == 2
    assert ap.claim(tc(1), "r1", "B") == 1
    ok(ap.one(Op(1, "open", 1, cap=5), device="dB"))
    assert ap.settle(tc(1), "r1", "A", "0") == 0
    assert r.hgetall(key) == {tc(1).encode(): b"r1"}
    assert ap.claim(tc(1), "r2", "C") == 0


def test_claim_refused_by_the_round_then_settled_leaves_no_trace(ap: Apply, r: redis.Redis) -> None:
    """The race the pre-check cannot see: the round closes between claim and open."""
    key = keys.tube_claim(tc(1))
    claims_before = r.hgetall(key)
    assert ap.claim(tc(1), "r1", "n1") == 2
    r.hset(keys.meta(R), "state", "closed")
    refused(ap.one(Op(1, "open", 1, cap=5)), "round_closed")
    assert ap.settle(tc(1), "r1", "n1", "0") == 1
    assert r.hgetall(key) == claims_before
    assert not r.exists(keys.tube(R, tc(1)))


def test_claim_without_a_nonce_is_final_at_once(ap: Apply, r: redis.Redis) -> None:
    """Boxing's form: no pending mark, so nothing can settle it away."""
    key = keys.tube_claim(tc(1))
    assert ap.claim(tc(1), "r1") == 2
    assert r.hgetall(key) == {tc(1).encode(): b"r1"}
    assert ap.settle(tc(1), "r1", "", "0") == 0
    assert r.hgetall(key) == {tc(1).encode(): b"r1"}


def test_clock_argument(ap: Apply, r: redis.Redis) -> None:
    """A device time (ms) sets the record's times and journal ``at``; ``u`` flags it."""
    t = 1_764_640_000
    ok(ap.one(Op(1, "open", 1, cap=5, clock=str(t * 1000 + 999))))
    ok(ap.one(Op(2, "scan", 1, rh(1), clock=str((t + 30) * 1000))), 1)
    ok(ap.one(Op(3, "scan", 1, rh(2), clock="u")), 2)
    ok(ap.one(Op(4, "close", 1, clock=str((t + 90) * 1000))), 2, closed=1)
    rec = TubeRecord(r.get(keys.tube(R, tc(1))))
    now = int(r.time()[0])
    assert rec.opened_at == t
    assert rec.members[0][1] == t + 30
    assert abs(rec.members[1][1] - now) <= 2
    assert rec.closed_at == t + 90
    fields = [f for _, f in r.xrange(keys.journal(R))]
    assert [f.get(b"at") for f in fields] == [
        str(t * 1000 + 999).encode(),
        str((t + 30) * 1000).encode(),
        None,
        str((t + 90) * 1000).encode(),
    ]
    assert [f.get(b"clk") for f in fields] == [None, None, b"u", None]
    assert r.hget(keys.count(R), "clock_untrusted") == b"1"
    # A replay of the flagged op journals and counts nothing more.
    assert ap.one(Op(3, "scan", 1, rh(2), clock="u")).replayed == 1
    assert r.xlen(keys.journal(R)) == 4


def test_malformed_clock_changes_nothing(ap: Apply, r: redis.Redis) -> None:
    ok(ap.one(Op(1, "open", 1, cap=5)))
    before = snapshot(r)
    with pytest.raises(redis.ResponseError):
        ap([Op(2, "scan", 1, rh(1)), Op(3, "scan", 1, rh(2), clock="12:00")])
    assert snapshot(r) == before
