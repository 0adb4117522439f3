"""The binding core's script calls: each names its keys and arguments, and its reply.

KEYS and ARGV are laid out here and only here, as each ``.lua`` file's header
says; :class:`~sampling.store.scripts.Runner` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sampling import codes
from sampling.binding import keys
from sampling.boxing import keys as boxing_keys
from sampling.lab import keys as lab_keys
from sampling.store.scripts import Call

#: A device may skip at most this many sequence numbers at once (lost operations
#: show up as gaps; a wild number does not allocate megabytes of op log).
SEQ_AHEAD = 10_000
SEQ_MAX = 1_000_000
_PKG = "sampling.binding"
#: apply.lua's answers that refuse the whole request (nothing written).
_WHOLE = (b"revoked", b"round_not_found")


@dataclass(frozen=True, slots=True)
class ApplyOp:
    """One binding operation as apply.lua takes it."""

    seq: int
    #: oplog.fingerprint of the op id and its payload (6 bytes).
    fingerprint: bytes
    op: str
    kind: str
    tube: str
    #: For an open: the tube's capacity, and whether this round holds its claim.
    capacity: int = 0
    claim: bool = False
    #: 0 pool, 1 re-sample.
    purpose: int = 0
    #: The resident's keyed hash (8 bytes), b"" for an op without a resident.
    rhash: bytes = b""
    #: The trusted device time in Unix ms, "" (none given) or "u" (not trusted).
    clock: str = ""


@dataclass(frozen=True, slots=True)
class OpOutcome:
    """apply.lua's answer for one operation."""

    status: str
    #: Residents in the tube after the op (or what the refusal counts).
    aux: int
    closed: bool
    replayed: bool


@dataclass(frozen=True, slots=True)
class ApplyReply:
    #: "revoked" or "round_not_found" when the whole request was refused, else None.
    refused: str | None
    ops: list[OpOutcome]


@dataclass(frozen=True, slots=True)
class Apply(Call[ApplyReply]):
    """apply.lua: one device's binding operations, in order, in the round's slot."""

    package = _PKG
    name = "apply"
    durable = True

    round_id: str
    device: str
    site: str
    ops: list[ApplyOp]
    ahead: int = SEQ_AHEAD
    seq_max: int = SEQ_MAX

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        ks: list[Any] = [
            keys.meta(rid),
            keys.count(rid),
            keys.journal(rid),
            keys.oplog(rid, self.device),
            keys.revoked(rid),
            *keys.activity(rid),
            # Read only, to let a re-sample whose tube failed be tried again.
            lab_keys.result(rid),
            boxing_keys.lost(rid),
        ]
        args: list[Any] = [self.device, self.site, self.ahead, self.seq_max]
        for o in self.ops:
            tkey = keys.tube(rid, o.tube)
            if o.rhash:
                ks += [tkey, keys.resident_bucket(rid, o.rhash), keys.risk_bucket(rid, o.rhash)]
            else:
                ks += [tkey, tkey, tkey]
            args += [
                o.seq,
                o.fingerprint,
                o.op,
                o.kind,
                o.tube,
                codes.tube_number(o.tube),
                f"{o.capacity}:{int(o.claim)}" if o.kind == "open" else "0",
                o.purpose,
                o.rhash,
                o.clock,
            ]
        return ks, args

    def decode(self, reply: Any) -> ApplyReply:
        if reply and reply[0] in _WHOLE:
            return ApplyReply(refused=reply[0].decode(), ops=[])
        return ApplyReply(
            refused=None,
            ops=[
                OpOutcome(
                    status=reply[i].decode(),
                    aux=int(reply[i + 1]),
                    closed=bool(int(reply[i + 2])),
                    replayed=bool(int(reply[i + 3])),
                )
                for i in range(0, len(reply), 4)
            ],
        )


#: claim.lua's answers.
TAKEN, HELD, OTHER_ROUND = 2, 1, 0


@dataclass(frozen=True, slots=True)
class Claim(Call[int]):
    """claim.lua: claim a code (a tube's or a box's) for a round, once ever.

    Answers :data:`TAKEN` (by this request, pending until settled when a nonce is
    given), :data:`HELD` (the round's already) or :data:`OTHER_ROUND`.
    """

    package = _PKG
    name = "claim"

    #: The claim's key: ``binding.keys.tube_claim`` or ``boxing.keys.box_claim``.
    key: str
    code: str
    round_id: str
    #: This request's nonce; None: the claim is final at once.
    nonce: str | None = None

    @classmethod
    def of_tube(cls, tube: str, round_id: str, nonce: str | None = None) -> Claim:
        return cls(keys.tube_claim(tube), tube, round_id, nonce)

    def layout(self) -> tuple[list[Any], list[Any]]:
        args = [self.code, self.round_id]
        if self.nonce is not None:
            args.append(self.nonce)
        return [self.key], args

    def decode(self, reply: Any) -> int:
        return int(reply)


@dataclass(frozen=True, slots=True)
class Settle(Call[bool]):
    """settle.lua: keep a pending claim whose open was accepted, else release it.

    Answers True when the claim was released.
    """

    package = _PKG
    name = "settle"

    key: str
    tube: str
    round_id: str
    nonce: str
    accepted: bool

    @classmethod
    def of_tube(cls, tube: str, round_id: str, nonce: str, *, accepted: bool) -> Settle:
        return cls(keys.tube_claim(tube), tube, round_id, nonce, accepted)

    def layout(self) -> tuple[list[Any], list[Any]]:
        return [self.key], [self.tube, self.round_id, self.nonce, "1" if self.accepted else "0"]

    def decode(self, reply: Any) -> bool:
        return bool(int(reply))


@dataclass(frozen=True, slots=True)
class RiskFlags(Call[int | None]):
    """risk.lua: set (or, with "", clear) residents' manual risk flags in a round.

    Answers the residents written, or None for an unknown round.
    """

    package = _PKG
    name = "risk"

    round_id: str
    by: str
    reason: str
    #: (resident hash, manual flags) per resident.
    residents: list[tuple[bytes, str]]

    def layout(self) -> tuple[list[Any], list[Any]]:
        ks: list[Any] = [keys.meta(self.round_id), keys.journal(self.round_id)]
        args: list[Any] = [self.by, self.reason]
        for rhash, flags in self.residents:
            ks.append(keys.risk_bucket(self.round_id, rhash))
            args += [rhash[1:], flags, rhash]
        return ks, args

    def decode(self, reply: Any) -> int | None:
        written = int(reply)
        return None if written < 0 else written


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundCreate(Call[bool]):
    """round_create.lua: a round's record, state, revoked devices and journal entry.

    Answers False when the round exists (nothing written).
    """

    package = _PKG
    name = "round_create"

    round_id: str
    #: The round record (msgpack ``Round``).
    record: bytes
    pool: int
    by: str
    round_name: str
    #: The revoked device ids at this moment.
    revoked: list[bytes | str] = field(default_factory=list)

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        ks: list[Any] = [keys.meta(rid), keys.revoked(rid), keys.journal(rid)]
        return ks, [self.record, self.pool, self.by, self.round_name, *self.revoked]

    def decode(self, reply: Any) -> bool:
        return bool(int(reply))


#: round_close.lua's answers.
ROUND_NOT_FOUND, CLOSED, ALREADY_CLOSED = 0, 1, 2


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundClose(Call[int]):
    """round_close.lua: close a round and journal it.

    Answers :data:`CLOSED`, :data:`ROUND_NOT_FOUND` or :data:`ALREADY_CLOSED`
    (nothing written for the last two).
    """

    package = _PKG
    name = "round_close"

    round_id: str
    #: The closed round's record (msgpack ``Round``).
    record: bytes
    by: str
    reason: str = ""

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        return [keys.meta(rid), keys.journal(rid)], [self.record, self.by, self.reason]

    def decode(self, reply: Any) -> int:
        return int(reply)


@dataclass(frozen=True, slots=True)
class RiskDeriveReply:
    #: 1 applied, 0 unknown round, 2 round not open, 3 stale version (0, 2, 3:
    #: nothing written).
    status: int
    #: Residents of these buckets the register flags.
    flagged: int
    #: Residents whose flags in the round changed.
    changed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskDerive(Call[RiskDeriveReply]):
    """risk_derive.lua: a round's register-derived flags in consecutive risk buckets
    ``first`` .. ``first + count - 1``, set to exactly ``residents``."""

    package = _PKG
    name = "risk_derive"

    round_id: str
    by: str
    #: The register version (a newer one applied already: nothing written).
    version: int
    first: int
    count: int
    #: (resident hash, flags) for every flagged resident of these buckets.
    residents: list[tuple[bytes, str]]

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        buckets = keys.risk_buckets(rid)[self.first : self.first + self.count]
        args: list[Any] = [self.by, self.version, self.first]
        for rhash, flags in self.residents:
            args += [rhash, flags]
        return [keys.meta(rid), keys.journal(rid), *buckets], args

    def decode(self, reply: Any) -> RiskDeriveReply:
        status, flagged, changed = (int(v) for v in reply)
        return RiskDeriveReply(status, flagged, changed)
