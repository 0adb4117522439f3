"""Wire and domain types of boxing and custody. Times are unix seconds (floats)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, field

from sampling.schema import Base, Code, Ident, OpId, Seq, Text

BoxState = Literal["open", "sealed", "picked_up", "received", "intake_closed"]
Condition = Literal["ok", "damaged", "leaking"]
#: Where an intake-scanned tube was: on this box's manifest, in another box,
#: bound but in no box, or never bound in this round.
Where = Literal["manifest", "other_box", "unboxed", "unbound"]
Count = Annotated[int, Meta(ge=0, le=100_000)]
Reason = Annotated[str, Meta(min_length=1, max_length=200)]
#: A lab id, or empty for "not named here".
Lab = Annotated[str, Meta(pattern=r"^([A-Za-z0-9][A-Za-z0-9_-]{0,39})?$")]


class OpenBox(Base, frozen=True):
    op: OpId
    seq: Seq
    box: Code
    #: The lab the box goes to; may also be given at sealing or handover.
    lab: Lab = ""


class BoxTube(Base, frozen=True):
    op: OpId
    seq: Seq
    tube: Code


class RemoveTube(Base, frozen=True):
    op: OpId
    seq: Seq
    reason: Reason


class SealBox(Base, frozen=True):
    """What the sealer physically counted in the box."""

    op: OpId
    seq: Seq
    tubes: Count
    samples: Count
    lab: Lab = ""


class Handover(Base, frozen=True):
    op: OpId
    seq: Seq
    #: The courier's device id (the sealer scans the courier's badge).
    courier: Ident
    lab: Lab = ""


class Pickup(Base, frozen=True):
    op: OpId
    seq: Seq
    #: Where the courier took the box (free text or coordinates).
    place: Text = ""


class Receive(Base, frozen=True):
    op: OpId
    seq: Seq


class IntakeScan(Base, frozen=True):
    op: OpId
    seq: Seq
    tube: Code
    condition: Condition = "ok"


class CloseIntake(Base, frozen=True):
    op: OpId
    seq: Seq


class BoxResult(Base, frozen=True):
    """What one operation came to; ``status`` is ``ok`` (refusals are problem documents)."""

    seq: int
    op: str
    kind: str
    box: str
    tube: str | None
    status: str
    state: str
    tubes: int
    samples: int
    replayed: bool = False


class BoxTubeView(Base, frozen=True):
    tube: str
    residents: int
    boxed_at: float


class Box(Base, frozen=True):
    box: str
    round: str
    site: str
    lab: str
    state: BoxState
    capacity: int
    tubes: int
    samples: int
    opened_at: float
    opened_by: str
    sealed_at: float | None = None
    sealed_by: str | None = None
    handed_at: float | None = None
    handed_by: str | None = None
    courier: str | None = None
    picked_up_at: float | None = None
    pickup_place: str | None = None
    received_at: float | None = None
    received_by: str | None = None
    intake_closed_at: float | None = None
    contents: list[BoxTubeView] = []


class Manifest(Base, frozen=True):
    box: str
    round: str
    site: str
    lab: str
    sealed_at: float
    sealed_by: str
    tube_count: int
    sample_count: int
    tubes: list[BoxTubeView]
    #: The sampling point's name as people know it (Chinese), when registered.
    site_name: str = ""
    #: Single-person tubes in the box (risk residents: yellow or red code, isolation).
    singles: list[str] = []


class TubeIssue(Base, frozen=True):
    tube: str
    #: Residents whose result this tube carries (0 for a tube never bound).
    residents: int
    #: First 8 hex digits of each resident's keyed hash, never the code itself.
    refs: list[str]
    where: Where
    condition: Condition | None = None
    #: The box the tube is listed in, for an extra tube bound into another box.
    other_box: str | None = None


class Discrepancies(Base, frozen=True):
    box: str
    round: str
    lab: str
    closed: bool
    received: int
    missing: list[TubeIssue]
    extra: list[TubeIssue]
    damaged: list[TubeIssue]
    #: Residents behind every missing, extra or damaged tube.
    residents_affected: int


class Event(Base, frozen=True):
    at: float
    event: str
    by: str | None = None
    place: str | None = None
    detail: str | None = None


class Timeline(Base, frozen=True):
    code: str
    kind: Literal["box", "tube"]
    round: str
    events: list[Event]


class Late(Base, frozen=True):
    code: str
    since: float
    minutes: float
    site: str | None = None
    lab: str | None = None


class Overdue(Base, frozen=True):
    now: float
    #: The limits applied, seconds.
    limits: dict[str, int]
    unboxed: list[Late]
    sealed: list[Late]
    transit: list[Late]
    intake: list[Late]
    #: Tubes open longer than the limit (``open``): a tube left open at a point.
    open: list[Late] = field(default_factory=list)
    #: Tubes received at intake in good condition, still without a result (``result``).
    result: list[Late] = field(default_factory=list)
