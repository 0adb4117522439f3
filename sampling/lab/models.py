"""Wire and domain types of the lab package."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from sampling import localtime
from sampling.schema import Base, Code, Text

Outcome = Literal["negative", "positive", "invalid"]
OUTCOMES: tuple[Outcome, ...] = ("negative", "positive", "invalid")
#: Cycle thresholds outside this range are a typo or a machine fault.
Ct = Annotated[float, Meta(gt=0, le=50, description="cycle threshold")]

#: What became of one result row: ``stored`` (new), ``duplicate`` (the same result
#: was stored before), ``held`` (disagrees with the stored result: kept for
#: review), ``orphan`` (no one bound the tube in this round: queued), or
#: ``refused`` (the row itself is wrong; ``reason`` says how).
RowStatus = Literal["stored", "duplicate", "held", "orphan", "refused"]


class ResultIn(Base, frozen=True, kw_only=True):
    """One tube's result as a lab reports it."""

    tube: Code
    outcome: Outcome
    #: When the tube was tested (ISO 8601; a time without zone is server-local).
    tested_at: datetime
    ct_orf1ab: Ct | None = None
    ct_n: Ct | None = None
    #: The lab's id; a lab device may leave it out (its own lab is used).
    lab: Text = ""


class ResultBatch(Base, frozen=True, kw_only=True):
    results: Annotated[list[ResultIn], Meta(min_length=1)]
    #: Check every row (and what each would come to) without storing anything.
    dry_run: bool = False


class LabResult(Base, frozen=True, kw_only=True):
    """A checked result, ready to store: canonical tube code, time in ms."""

    tube: str
    outcome: Outcome
    ct_orf1ab: float | None
    ct_n: float | None
    lab: str
    tested_at: int

    def packed(self) -> str:
        def ct(v: float | None) -> str:
            return "" if v is None else f"{v:g}"

        return f"{self.outcome}|{ct(self.ct_orf1ab)}|{ct(self.ct_n)}|{self.lab}|{self.tested_at}"

    @classmethod
    def unpack(cls, tube: str, packed: str) -> LabResult:
        outcome, ct1, ctn, lab, at = packed.split("|")
        return cls(
            tube=tube,
            outcome=outcome,  # type: ignore[arg-type]
            ct_orf1ab=float(ct1) if ct1 else None,
            ct_n=float(ctn) if ctn else None,
            lab=lab,
            tested_at=int(at),
        )

    def words(self, tz: str) -> str:
        """In words: ``negative, Ct ORF1ab 31.2, lab L1, tested 2026-12-02 09:14``."""
        parts: list[str] = [self.outcome]
        cts = (("ORF1ab", self.ct_orf1ab), ("N", self.ct_n))
        parts += [f"Ct {name} {ct:g}" for name, ct in cts if ct is not None]
        if self.lab:
            parts.append(f"lab {self.lab}")
        parts.append("tested " + localtime.stamp(self.tested_at / 1000, tz, seconds=False))
        return ", ".join(parts)


class RowProblem(Base, frozen=True, kw_only=True):
    """A row that cannot be used, and why. ``row`` counts as a spreadsheet does:
    the header is row 1, the first data row is row 2 (HL7 and JSON: the n-th
    result, from 1). Row 0 is the file as a whole (empty, a column missing)."""

    row: int
    reason: str
    value: str = ""


class RowOutcome(Base, frozen=True, kw_only=True):
    row: int
    tube: str
    status: RowStatus
    reason: str = ""


class IngestReport(Base, frozen=True, kw_only=True):
    """What a results file or batch came to. Always ``rows_in == accepted + refused``,
    where accepted = stored + duplicate + held + orphan."""

    round: str
    dry_run: bool
    rows_in: int
    accepted: int
    stored: int
    duplicate: int
    held: int
    orphan: int
    refused: int
    problems: list[RowProblem]
    rows: list[RowOutcome]


#: What a register file replaces: the communities it names, the grids it names, or
#: the whole register.
RegisterScope = Literal["community", "grid", "all"]


class CommunityChange(Base, frozen=True, kw_only=True):
    """What an import does to one community: households and residents added, removed
    and changed (a changed household gained, lost or changed a resident)."""

    community: str
    households_added: int = 0
    households_removed: int = 0
    households_changed: int = 0
    residents_added: int = 0
    residents_removed: int = 0
    residents_changed: int = 0
    #: Residents of the community in the register before and after.
    residents_before: int = 0
    residents_after: int = 0


class RegisterReport(Base, frozen=True, kw_only=True):
    """What a register file came to: ``rows_read == rows_stored + rows_refused``."""

    source: str
    dry_run: bool
    rows_read: int
    rows_stored: int
    rows_refused: int
    problems: list[RowProblem]
    path: str = ""
    risk_flagged: int = 0
    scope: RegisterScope = "community"
    #: The communities (or grids) the file replaces, each in full.
    replaced: list[str] = []
    #: Communities (or grids) the file names with no good row: left as they were.
    kept: list[str] = []
    changes: list[CommunityChange] = []
    #: The register's version after the import (each stored import adds one).
    version: int = 0


class HeldResult(Base, frozen=True, kw_only=True):
    tube: str
    stored: LabResult | None
    held: LabResult
    received_at: int


class OrphanResult(Base, frozen=True, kw_only=True):
    result: LabResult
