"""The lab package's script calls: each names its keys and arguments, and its reply.

KEYS and ARGV are laid out here and only here, as each ``.lua`` file's header says;
:class:`~sampling.store.scripts.Runner` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sampling.boxing import keys as boxing_keys
from sampling.lab import keys
from sampling.store.scripts import Call

if TYPE_CHECKING:
    from sampling.lab.models import LabResult


@dataclass(frozen=True, slots=True)
class RecordRow:
    result: LabResult
    #: The box the tube was in when the caller looked ("" none).
    box: str = ""


@dataclass(frozen=True, slots=True)
class RecordReply:
    #: The round does not exist (nothing written).
    round_not_found: bool
    #: Per row: stored | duplicate | held | orphan | refused, and for a refusal why
    #: (other_lab, not_boxed, not_received, tube_moved).
    rows: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Record(Call[RecordReply]):
    """record.lua: store a batch of lab results for one round (or, dry, classify them)."""

    package = "sampling.lab"
    name = "record"
    durable = True

    round_id: str
    device: str
    rows: list[RecordRow]
    dry_run: bool = False
    #: The lab a lab device reports for; None: any lab's tubes (an admin, the CLI).
    holder: str | None = None

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        ks: list[Any] = [
            keys.meta(rid),
            keys.result(rid),
            keys.review(rid),
            keys.orphans(rid),
            keys.journal(rid),
            keys.count(rid),
            keys.awaiting_result(rid),
            keys.positives(rid),
        ]
        # A lab device without a lab holds no tube; "" would mean "any lab" to the script.
        holder = "\0" if self.holder == "" else self.holder or ""
        args: list[Any] = [self.device, "1" if self.dry_run else "0", holder]
        for row in self.rows:
            res = row.result
            tkey = keys.tube(rid, res.tube)
            ks += [tkey, boxing_keys.tube_box(rid, res.tube)]
            if row.box:
                ks += [boxing_keys.box(rid, row.box), boxing_keys.intake(rid, row.box)]
            else:
                ks += [tkey, tkey]
            args += [
                res.tube,
                res.packed(),
                res.outcome,
                "" if res.ct_orf1ab is None else f"{res.ct_orf1ab:g}",
                "" if res.ct_n is None else f"{res.ct_n:g}",
                res.lab,
                res.tested_at,
                row.box,
            ]
        return ks, args

    def decode(self, reply: Any) -> RecordReply:
        words = [w.decode() if isinstance(w, bytes) else w for w in reply]
        if words == ["round_not_found"]:
            return RecordReply(round_not_found=True, rows=[])
        rows = []
        for word in words:
            status, _, why = word.partition(":")
            rows.append((status, why))
        return RecordReply(round_not_found=False, rows=rows)


@dataclass(frozen=True, slots=True)
class ResolveReply:
    #: ok | round_not_found | not_held | result_changed | bad_choice
    status: str
    #: With not_held: the held value that is no longer held.
    value: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolve(Call[ResolveReply]):
    """resolve.lua: a supervisor's decision on a tube's held results."""

    package = "sampling.lab"
    name = "resolve"

    round_id: str
    tube: str
    #: The deciding device's id (or the CLI user).
    by: str
    #: keep | held | retest
    decision: str
    reason: str
    #: The stored packed result the supervisor saw ("" none).
    seen: str
    #: The packed result chosen ("" for a re-test).
    chosen: str
    #: The held packed values the decision covers (at least one).
    covered: list[str]

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        # The tube's record is read only: whether the result's home is the bound
        # tubes' hash or the orphans'.
        ks = [keys.meta(rid), keys.result(rid), keys.orphans(rid), keys.review(rid)]
        ks += [keys.journal(rid), keys.count(rid), keys.tube(rid, self.tube)]
        argv: list[Any] = [self.by, self.decision, self.reason, self.tube, self.seen]
        return ks, [*argv, self.chosen, *self.covered]

    def decode(self, reply: Any) -> ResolveReply:
        words = [_text(w) for w in reply]
        return ResolveReply(words[0], words[1] if len(words) > 1 else "")


@dataclass(frozen=True, slots=True)
class DoorReply:
    #: ok | replayed | round_not_found | op_reused
    status: str
    #: Residents recorded (ok, replayed).
    recorded: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Door(Call[DoorReply]):
    """doorlog.lua: what a grid team found at one household's door."""

    package = "sampling.lab"
    name = "doorlog"

    round_id: str
    device: str
    site: str
    op: str
    #: oplog.fingerprint of the op id and its payload (6 bytes).
    fingerprint: bytes
    outcome: str
    #: "" unless sampled.
    tube: str
    grid: str
    #: The household's residents' keyed hashes (8 bytes each).
    residents: list[bytes]

    def layout(self) -> tuple[list[Any], list[Any]]:
        rid = self.round_id
        ks = [keys.meta(rid), keys.door(rid), keys.journal(rid)]
        ks += [keys.door_count(rid), keys.door_ops(rid)]
        argv: list[Any] = [self.device, self.site, self.op, self.fingerprint, self.outcome]
        return ks, [*argv, self.tube, self.grid, *self.residents]

    def decode(self, reply: Any) -> DoorReply:
        status = _text(reply[0])
        return DoorReply(status, int(reply[1]) if len(reply) > 1 else 0)


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
