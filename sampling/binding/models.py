"""Wire and domain types of the binding core."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from sampling.schema import BULK_MAX, Base, Capacity, Code, Ident, OpId, RoundId, Seq, Text

POOL_SIZES = (1, 5, 10, 20)
Purpose = Literal["pool", "resample"]
OpKind = Literal["open", "scan", "undo", "close"]
Clock = Literal["device", "server", "untrusted"]

#: The device's clock at the moment of the scan, Unix seconds (fractions allowed).
DeviceTime = Annotated[
    float,
    Meta(
        ge=0,
        le=4_102_444_800,
        description=(
            "the device's time of the operation, Unix epoch seconds (e.g. 1764640000.5). "
            "The server records it as the sampled-at time, beside its own receive time. "
            "A time more than the allowed skew (SAMPLING_CLOCK_SKEW, default 300 s) in the "
            "future, or before the round opened, is not trusted: the operation is applied "
            "with the receive time and answered with clock='untrusted'. Omitted: the "
            "receive time."
        ),
    ),
]


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


class SitesIn(Base, frozen=True):
    """Sites registered in one call, all or none; a site already registered with
    the same details is left as it is (so a retry changes nothing)."""

    sites: Annotated[list[SiteIn], Meta(min_length=1, max_length=BULK_MAX)]


class SitesCreated(Base, frozen=True):
    created: int
    unchanged: int


class OpenTube(Base, frozen=True):
    """Open a tube. ``at``: the device's time of the scan (Unix seconds), used as the
    tube's opened-at time unless it is not trusted (see ``at``)."""

    op: OpId
    seq: Seq
    tube: Code
    capacity: Capacity | None = None
    purpose: Purpose = "pool"
    at: DeviceTime | None = None


class Scan(Base, frozen=True):
    """Bind a resident. ``at``: the device's time of the scan (Unix seconds), the
    sampled-at time shown and counted everywhere, unless it is not trusted."""

    op: OpId
    seq: Seq
    resident: Code
    at: DeviceTime | None = None


class Undo(Base, frozen=True):
    """Undo the tube's last scan; ``at``: the device's time of the undo (Unix seconds)."""

    op: OpId
    seq: Seq
    #: The resident whose scan is undone; omitted: whoever was scanned last.
    resident: Code | None = None
    at: DeviceTime | None = None


class CloseTube(Base, frozen=True):
    """Close a tube by hand; ``at``: the device's time (Unix seconds), the closed-at time."""

    op: OpId
    seq: Seq
    at: DeviceTime | None = None


class BatchOp(Base, frozen=True):
    """One queued operation. ``at`` is the device's time when the sampler did it (Unix
    seconds): an offline batch keeps the times of the scans, not of the upload."""

    op: OpId
    seq: Seq
    kind: OpKind
    tube: Code
    resident: Code | None = None
    capacity: Capacity | None = None
    purpose: Purpose = "pool"
    at: DeviceTime | None = None


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
    #: Whose time was recorded: ``device`` (the op's ``at``), ``server`` (no ``at``
    #: given) or ``untrusted`` (``at`` was refused as a clock error; the receive
    #: time was recorded instead, the op flagged, and ``message`` says so).
    clock: Clock = "server"


#: A run of unused sequence numbers, ``[first, last]``. A two-item list rather than a
#: tuple: OpenAPI 3.1 has no tuple schema that every client reads.
Gap = Annotated[list[int], Meta(min_length=2, max_length=2)]


class BatchResult(Base, frozen=True):
    results: list[OpResult]
    applied: int
    refused: int
    #: Sequence numbers below the device's highest that no operation has used.
    gaps: list[Gap]


class DeviceProgress(Base, frozen=True):
    """Where a device's sequence numbers stand in a round, as the server has seen them.

    A handheld that lost its local counter (new browser profile, cleared storage)
    starts again above ``highest``, so it never reuses a number the server has.
    """

    device: str
    round: str
    #: The highest sequence number with an op record; 0 when none.
    highest: int
    #: Unused numbers below ``highest`` (first, last), the latest hundred runs.
    gaps: list[Gap]


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
    """Manual risk flags: they add to the flags the register gives (which follow the
    register by themselves) and stay until cleared here."""

    residents: list[RiskFlag]
    #: Why: required to set a flag by hand (kept in the journal); optional to clear one.
    reason: Text = ""
