"""Boxing's script calls: each names its keys and arguments, and its reply.

KEYS and ARGV are laid out here and only here, as each ``.lua`` file's header
says; :class:`~sampling.store.scripts.Runner` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from sampling.binding.scripts import SEQ_AHEAD, SEQ_MAX
from sampling.boxing import keys
from sampling.lab import keys as lab_keys
from sampling.oplog import fingerprint
from sampling.store.scripts import Call

if TYPE_CHECKING:
    from sampling.auth.models import Device

_PKG = "sampling.boxing"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What every custody call names: who, in which round, under which op, on which
    box (and tube)."""

    #: The device doing the step: its id, site and lab are ARGV[1..3].
    device: Device
    round_id: str
    seq: int
    op: str
    box: str
    #: "" when the operation names no tube.
    tube: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Custody(Call[CustodyReply]):
    """custody.lua: one boxing or custody operation of one device, in the round's slot.

    One subclass per kind names that kind's own values (custody.lua's ARGV[12..14]);
    this class holds what every kind shares.
    """

    package = _PKG
    name = "custody"
    durable = True
    #: custody.lua's ARGV[9], which picks the step.
    kind: ClassVar[str]

    step: Step
    ahead: int = SEQ_AHEAD
    seq_max: int = SEQ_MAX

    def values(self) -> tuple[str | int, ...]:
        """The kind's own values, ARGV[12..14] in order (at most three)."""
        return ()

    def payload(self) -> str:
        """What the device sent beside the box and tube: a retry must repeat it."""
        return "|".join(map(str, self.values()))

    @property
    def fingerprint(self) -> bytes:
        """oplog.fingerprint of the op id and the operation (6 bytes)."""
        step = self.step
        text = f"{self.kind}|{step.box}|{step.tube}|{self.payload()}"
        return fingerprint(step.op, text.encode())

    def _tail(self) -> tuple[list[str], list[str]]:
        """Keys after KEYS[19] and arguments after ARGV[14], for the kinds that have them."""
        return [], []

    def layout(self) -> tuple[list[Any], list[Any]]:
        step = self.step
        rid, box, tube = step.round_id, step.box, step.tube
        bkey = keys.box(rid, box)
        more_keys, more_argv = self._tail()
        ks: list[Any] = [
            keys.meta(rid),
            keys.journal(rid),
            keys.oplog(rid, step.device.id),
            keys.revoked(rid),
            bkey,
            keys.box_tubes(rid, box),
            keys.tube_box(rid, tube) if tube else bkey,
            keys.tube(rid, tube) if tube else bkey,
            keys.intake(rid, box),
            *(keys.due(rid, w) for w in keys.DUE),
            keys.count(rid),
            *keys.activity(rid),
            *more_keys,
        ]
        argv: list[Any] = [
            step.device.id,
            step.device.site,
            step.device.lab,
            self.ahead,
            self.seq_max,
            step.seq,
            self.fingerprint,
            step.op,
            self.kind,
            box,
            tube,
            *(*self.values(), "", "", "")[:3],
            *more_argv,
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


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxOpen(Custody):
    """The sealer opens a box at the device's site."""

    kind = "open"
    capacity: int
    #: The lab the box goes to; "" when it is named at sealing or handover.
    lab: str = ""
    #: This round holds the box code's claim (``claim.lua``): the code is not used elsewhere.
    claimed: bool

    def values(self) -> tuple[str | int, ...]:
        return self.capacity, self.lab, int(self.claimed)

    def payload(self) -> str:
        # Capacity and claim are the server's, not the device's: a retry need not match them.
        return self.lab


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxAdd(Custody):
    """The sealer scans a closed tube (the step's tube) into the open box."""

    kind = "add"


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxRemove(Custody):
    """The sealer takes the step's tube out of a box not sealed yet."""

    kind = "remove"
    reason: str

    def values(self) -> tuple[str | int, ...]:
        return (self.reason,)


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxSeal(Custody):
    """The sealer seals the box with what was physically counted."""

    kind = "seal"
    #: Tubes and samples counted by hand.
    tubes: int
    samples: int
    lab: str = ""
    #: The tubes in the box as read just before (KEYS[20..], ARGV[15..]): the script
    #: answers "box_changed" when the box holds others by then.
    inside: list[str] = field(default_factory=list)

    def values(self) -> tuple[str | int, ...]:
        return self.tubes, self.samples, self.lab

    def _tail(self) -> tuple[list[str], list[str]]:
        return [keys.tube(self.step.round_id, t) for t in self.inside], list(self.inside)


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxHandover(Custody):
    """The sealer hands the sealed box to a named courier."""

    kind = "handover"
    courier: str
    lab: str = ""

    def values(self) -> tuple[str | int, ...]:
        return self.courier, self.lab


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxPickup(Custody):
    """The courier takes the box."""

    kind = "pickup"
    place: str = ""

    def values(self) -> tuple[str | int, ...]:
        return (self.place,)


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxReceive(Custody):
    """The lab desk scans the arriving box."""

    kind = "receive"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Intake(Custody):
    def _tail(self) -> tuple[list[str], list[str]]:
        # What intake finds lost, the binding core reads to allow a re-sample's next try.
        return [keys.lost(self.step.round_id)], []


@dataclass(frozen=True, slots=True, kw_only=True)
class TubeIntake(_Intake):
    """The lab desk scans the step's tube out of the received box."""

    kind = "intake"
    condition: str = "ok"

    def values(self) -> tuple[str | int, ...]:
        return (self.condition,)


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeClose(_Intake):
    """The lab desk closes the box's intake: tubes not scanned are missing."""

    kind = "intake_close"


@dataclass(frozen=True, slots=True, kw_only=True)
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


@dataclass(frozen=True, slots=True, kw_only=True)
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
