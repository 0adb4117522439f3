"""Wire and domain types of the binding core."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from sampling.schema import Base, Capacity, Code, Ident, OpId, RoundId, Seq, Text

POOL_SIZES = (1, 5, 10, 20)
Purpose = Literal["pool", "resample"]
OpKind = Literal["open", "scan", "undo", "close"]


class RoundIn(Base, frozen=True):
    id: RoundId
    name: Text
    pool: Capacity = 10


class Round(Base, frozen=True):
    id: str
    name: str
    pool: int
    state: Literal["open", "closed"]
    created_at: float


class SiteIn(Base, frozen=True):
    id: Ident
    name: Text
    street: Text
    community: Text
    grid: Text


class Site(SiteIn, frozen=True, kw_only=True):
    pass


class OpenTube(Base, frozen=True):
    op: OpId
    seq: Seq
    tube: Code
    capacity: Capacity | None = None
    purpose: Purpose = "pool"


class Scan(Base, frozen=True):
    op: OpId
    seq: Seq
    resident: Code


class Undo(Base, frozen=True):
    op: OpId
    seq: Seq
    #: The resident whose scan is undone; omitted: whoever was scanned last.
    resident: Code | None = None


class CloseTube(Base, frozen=True):
    op: OpId
    seq: Seq


class BatchOp(Base, frozen=True):
    op: OpId
    seq: Seq
    kind: OpKind
    tube: Code
    resident: Code | None = None
    capacity: Capacity | None = None
    purpose: Purpose = "pool"


class Batch(Base, frozen=True):
    ops: list[BatchOp]


class OpResult(Base, frozen=True):
    """What one operation came to. ``status`` is ``ok`` or a refusal code."""

    seq: int
    op: str
    kind: str
    tube: str
    status: str
    message: str = ""
    count: int = 0
    closed: bool = False
    replayed: bool = False


class BatchResult(Base, frozen=True):
    results: list[OpResult]
    applied: int
    refused: int
    #: Sequence numbers below the device's highest that no operation has used.
    gaps: list[tuple[int, int]]


class TubeMember(Base, frozen=True):
    #: First 8 hex digits of the resident's keyed hash: enough to tell scans apart.
    ref: str
    scanned_at: float


class Tube(Base, frozen=True):
    tube: str
    round: str
    site: str
    device: str
    state: Literal["open", "closed", "boxed"]
    purpose: Purpose
    capacity: int
    count: int
    opened_at: float
    closed_at: float | None
    members: list[TubeMember]


class RiskFlag(Base, frozen=True):
    resident: Code
    #: Any of Y (yellow code), R (red code), I (isolation); empty clears the flag.
    flags: Annotated[str, Meta(pattern=r"^[YRI]{0,3}$")] = ""


class RiskUpdate(Base, frozen=True):
    residents: list[RiskFlag]
    #: Why, when this corrects earlier flags (kept in the journal).
    reason: Text = ""
