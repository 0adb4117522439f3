"""The live figures document, ``GET /v1/rounds/{round}/live``.

The field names are a contract with the dashboard page: change them together.
Times are Unix epoch seconds (the page shows them in the district's zone); ages
are seconds.
"""

from __future__ import annotations

from typing import Literal

from sampling.schema import Base

CoverageLevel = Literal["street", "community", "grid"]
SubjectKind = Literal["tube", "box", "device"]


class Residents(Base, frozen=True):
    #: The register without vacant households and residents away (as of the archive).
    expected: int
    #: Residents bound in a pool this round (live counter).
    sampled: int
    #: sampled / expected, percent, at most 100 (0 when the register is empty).
    coverage: float


class Minute(Base, frozen=True):
    #: Start of the minute, epoch seconds.
    minute: int
    scans: int


class Tubes(Base, frozen=True):
    """Each tube counted once, at the furthest stage it has reached."""

    open: int
    closed_unboxed: int
    #: In a box that is not sealed yet.
    boxed: int
    #: In a sealed box not yet picked up.
    sealed: int
    in_transit: int
    #: In a box received at the lab, no result yet.
    received: int
    resulted: int


class Orders(Base, frozen=True):
    """Single-tube re-sample orders, one per resident of a positive or invalid pool."""

    open: int
    sampled: int
    resulted: int


class Positives(Base, frozen=True):
    pools: int
    orders: Orders


class OverdueStage(Base, frozen=True):
    #: unboxed | sealed | transit | intake | result
    stage: str
    count: int
    #: Age of the oldest item past its limit, seconds (0 when none).
    oldest_s: float


class SilentDevice(Base, frozen=True):
    device: str
    site: str
    last_seen: float


class GapDevice(Base, frozen=True):
    device: str
    site: str
    #: Sequence numbers below the device's highest that never arrived.
    missing: int


class Devices(Base, frozen=True):
    #: Devices seen in the last five minutes.
    active: int
    silent: list[SilentDevice]
    gaps: list[GapDevice]


class CoverageRow(Base, frozen=True):
    level: CoverageLevel
    name: str
    #: The street of a community, the community of a grid ("" for a street).
    parent: str
    expected: int
    sampled: int
    coverage: float


class Alarm(Base, frozen=True):
    #: overdue_tube | overdue_box | no_result | positive_pool | silent_device |
    #: device_gap | seal_refused | intake_discrepancy
    kind: str
    subject_kind: SubjectKind
    subject: str
    age_s: float
    detail: str


class Live(Base, frozen=True):
    round: str
    #: Server time of this answer, epoch seconds.
    as_of: float
    #: Data time of the latest archived tables (coverage), or null before the first pass.
    archived_at: float | None
    residents: Residents
    #: One entry per minute of the last hour, oldest first.
    scans_per_minute: list[Minute]
    tubes: Tubes
    #: Boxes by custody state: open, sealed, picked_up, received, intake_closed.
    boxes: dict[str, int]
    #: Stored results by outcome: negative, positive, invalid.
    results: dict[str, int]
    positives: Positives
    overdue: list[OverdueStage]
    devices: Devices
    coverage: list[CoverageRow]
    alarms: list[Alarm]
