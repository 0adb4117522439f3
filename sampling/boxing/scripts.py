"""Boxing's script calls: each names its keys and arguments, and its reply.

KEYS and ARGV are laid out here and only here, as each ``.lua`` file's header
says; :class:`~sampling.store.scripts.Runner` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sampling.binding.scripts import SEQ_AHEAD, SEQ_MAX
from sampling.boxing import keys
from sampling.lab import keys as lab_keys
from sampling.store.scripts import Call

_PKG = "sampling.boxing"
#: Kinds whose step records what intake found lost (custody.lua's KEYS[20]).
_INTAKE = ("intake", "intake_close")


@dataclass(frozen=True, slots=True)
class CustodyReply:
    """custody.lua's answer.

    ``status`` is "revoked" or "box_changed" (nothing else filled in), or the
    operation's status word with the box as it now is.
    """

    status: str
    replayed: bool = False
    state: str = ""
    tubes: int = 0
    samples: int = 0


@dataclass(frozen=True, slots=True)
class Custody(Call[CustodyReply]):
    """custody.lua: one boxing or custody operation of one device, in the round's slot."""

    package = _PKG
    name = "custody"
    durable = True

    round_id: str
    device: str
    site: str
    lab: str
    seq: int
    #: oplog.fingerprint of the op id and its payload (6 bytes).
    fingerprint: bytes
    op: str
    kind: str
    box: str
    #: "" when the operation names no tube.
    tube: str = ""
    #: The kind's own values (custody.lua's ARGV[12..14]), at most three.
    args: tuple[str | int, ...] = ()
    #: For a seal: the tubes in the box as read just before.
    inside: list[str] = field(default_factory=list)
    ahead: int = SEQ_AHEAD
    seq_max: int = SEQ_MAX

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid, box, tube = self.round_id, self.box, self.tube
        bkey = keys.box(rid, box)
        ks: list[Any] = [
            keys.meta(rid),
            keys.journal(rid),
            keys.oplog(rid, self.device),
            keys.revoked(rid),
            bkey,
            keys.box_tubes(rid, box),
            keys.tube_box(rid, tube) if tube else bkey,
            keys.tube(rid, tube) if tube else bkey,
            keys.intake(rid, box),
            *(keys.due(rid, w) for w in keys.DUE),
            keys.count(rid),
            *keys.activity(rid),
            *(keys.tube(rid, t) for t in self.inside),
            *((keys.lost(rid),) if self.kind in _INTAKE else ()),
        ]
        argv: list[Any] = [
            self.device,
            self.site,
            self.lab,
            self.ahead,
            self.seq_max,
            self.seq,
            self.fingerprint,
            self.op,
            self.kind,
            box,
            tube,
            *(*self.args, "", "", "")[:3],
            *self.inside,
        ]
        return ks, argv

    def decode(self, reply: Any) -> CustodyReply:
        status = reply[0].decode()
        if len(reply) == 1:
            return CustodyReply(status)
        return CustodyReply(
            status=status,
            replayed=bool(int(reply[1])),
            state=reply[2].decode(),
            tubes=int(reply[3]),
            samples=int(reply[4]),
        )


@dataclass(frozen=True, slots=True)
class Unboxed(Call[int]):
    """unboxed.lua: fold tubes named by journal entries into the unboxed and open-tube
    indexes; answers the tubes now in the unboxed index."""

    package = _PKG
    name = "unboxed"

    round_id: str
    #: The journal id the tubes were read up to.
    cursor: str
    tubes: list[str]

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        ks: list[Any] = [
            keys.due(rid, "unboxed"),
            keys.due_cursor(rid),
            keys.due(rid, "open"),
            *(keys.tube(rid, t) for t in self.tubes),
        ]
        return ks, [self.cursor, *self.tubes]

    def decode(self, reply: Any) -> int:
        return int(reply)


@dataclass(frozen=True, slots=True)
class Unresulted(Call[list[tuple[str, float]]]):
    """unresulted.lua: tubes received before ``cutoff_ms`` still without a result,
    oldest first, as (tube, intake ms)."""

    package = _PKG
    name = "unresulted"

    round_id: str
    cutoff_ms: int
    limit: int

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        ks = [keys.awaiting_result(rid), lab_keys.result(rid), keys.lost(rid)]
        return ks, [self.cutoff_ms, self.limit]

    def decode(self, reply: Any) -> list[tuple[str, float]]:
        return [(reply[i].decode(), float(reply[i + 1])) for i in range(0, len(reply), 2)]
