"""The binding core's script calls: each names its keys and arguments, and its reply.

KEYS and ARGV are laid out here and only here, as each ``.lua`` file's header
says; :class:`~sampling.store.scripts.Runner` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
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
