"""Reading lab results: a lab system's CSV export, HL7 v2 ORU^R01 messages, JSON.

Every reader gives back the same two lists: the rows that make a
:class:`~sampling.lab.models.LabResult` (with their row numbers) and a
:class:`~sampling.lab.models.RowProblem` for every row that does not, so the
caller can always report ``rows_in == accepted + refused``. Tube codes are
checked for their check digit here: a garbled code never reaches Redis.
"""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final

import hl7

from sampling import codes
from sampling.lab.models import OUTCOMES, LabResult, Outcome, ResultIn, RowProblem

if TYPE_CHECKING:
    from collections.abc import Iterable

_OUTCOME_WORDS: Final[dict[str, Outcome]] = {
    "negative": "negative", "neg": "negative", "阴性": "negative", "-": "negative",
    "not detected": "negative", "260385009": "negative",
    "positive": "positive", "pos": "positive", "阳性": "positive", "+": "positive",
    "detected": "positive", "10828004": "positive",
    "invalid": "invalid", "inv": "invalid", "无效": "invalid", "inconclusive": "invalid",
    "455371000124106": "invalid", "419984006": "invalid",
}  # fmt: skip
_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "tube": ("tube", "tube_code", "sample", "sample_id", "barcode", "样本编号", "管码", "条码"),
    "outcome": ("outcome", "result", "结果", "检测结果"),
    "ct_orf1ab": ("ct_orf1ab", "orf1ab", "orf1ab_ct", "ct_orf1ab_gene"),
    "ct_n": ("ct_n", "n", "n_ct", "ct_n_gene", "n_gene"),
    "lab": ("lab", "lab_id", "laboratory", "实验室", "检测机构"),
    "tested_at": ("tested_at", "tested", "test_time", "time", "reported_at", "检测时间"),
}
_REQUIRED: Final = ("tube", "outcome", "tested_at")
_CT_MAX: Final = 50.0
#: No nucleic-acid test of this kind predates December 2019; a time before is a typo
#: (a year 1 or 1970 from an empty field), as is one more than a day ahead of us.
_EARLIEST_MS: Final = 1_575_158_400_000  # 2019-12-01T00:00Z
_AHEAD_MS: Final = 86_400_000


@dataclass
class Parsed:
    """Rows read from one source: the good ones, numbered, and the refused ones."""

    rows_in: int = 0
    good: list[tuple[int, LabResult]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    #: Rows refused; more than ``len(problems)`` when one problem (a missing
    #: column) refuses every row.
    refused: int = 0

    def refuse(self, row: int, reason: str, value: str = "") -> None:
        self.problems.append(RowProblem(row=row, reason=reason, value=value[:60]))
        self.refused += 1

    def within(self, earliest_ms: int, latest_ms: int, why: str) -> None:
        """Refuse the good rows tested outside ``[earliest_ms, latest_ms]`` (``why`` says
        what bounds them, e.g. the round's dates)."""
        keep: list[tuple[int, LabResult]] = []
        for n, res in self.good:
            if earliest_ms <= res.tested_at <= latest_ms:
                keep.append((n, res))
            else:
                when = datetime.fromtimestamp(res.tested_at / 1000).isoformat(timespec="minutes")
                self.refuse(n, f"test time {when} is outside {why}", res.tube)
        self.good = keep
        self.problems.sort(key=lambda p: p.row)


class _RowError(ValueError):
    pass


def header_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower().lstrip("\ufeff"))


def _outcome(text: str) -> Outcome:
    word = _OUTCOME_WORDS.get(text.strip().lower())
    if word is None:
        raise _RowError(f"outcome '{text}' is not one of {', '.join(OUTCOMES)}")
    return word


def _ct(text: str | float | None, gene: str) -> float | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        value = float(text)
    except ValueError:
        raise _RowError(f"Ct {gene} '{text}' is not a number") from None
    if not 0 < value <= _CT_MAX:
        raise _RowError(f"Ct {gene} {value:g} is outside 0-{_CT_MAX:g}")
    return value


def parse_time(text: str) -> int:
    """Unix milliseconds of an ISO 8601, HL7 (``YYYYMMDDHHMM[SS]``) or epoch time.

    A time without a zone is read as server-local time, as a lab's clock shows it.
    """
    raw = text.strip()
    if not raw:
        raise _RowError("the test time is missing")
    if raw.isascii() and raw.isdigit():
        if len(raw) == 13:
            return int(raw)
        if len(raw) == 10:
            return int(raw) * 1000
        fmt = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}.get(len(raw))
        if fmt is None:
            raise _RowError(f"test time '{raw}' is not a time")
        try:
            when = datetime.strptime(raw, fmt)
        except ValueError:
            raise _RowError(f"test time '{raw}' is not a time") from None
    else:
        try:
            when = datetime.fromisoformat(raw.replace("/", "-"))
        except ValueError:
            raise _RowError(f"test time '{raw}' is not a time") from None
    try:
        return round(when.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        raise _RowError(f"test time '{raw}' is not a plausible time") from None


def make_result(
    tube: str,
    outcome: str,
    ct_orf1ab: str | float | None,
    ct_n: str | float | None,
    lab: str,
    tested_at: str | int,
) -> LabResult:
    """A checked result, or :class:`ValueError` with the reason a lab can act on."""
    code = codes.normalize(tube)
    if not code:
        raise _RowError("the tube code is missing")
    if not codes.is_valid(code, codes.CodeKind.TUBE):
        kind = codes.classify(code)
        if kind is codes.CodeKind.TUBE:
            raise _RowError(f"tube {code} fails its check digit (a misread or typo)")
        raise _RowError(f"'{code[:24]}' is not a tube code")
    word = _outcome(outcome)
    c1, cn = _ct(ct_orf1ab, "ORF1ab"), _ct(ct_n, "N")
    if word == "positive" and c1 is None and cn is None:
        raise _RowError("a positive result needs its Ct values (ORF1ab, N)")
    if word != "positive":
        c1 = cn = None  # a negative or invalid tube has no meaningful Ct
    lab = lab.strip()
    if not lab:
        raise _RowError("the lab is missing")
    at = tested_at if isinstance(tested_at, int) else parse_time(tested_at)
    latest = round(time.time() * 1000) + _AHEAD_MS
    if not _EARLIEST_MS <= at <= latest:
        raise _RowError(
            f"test time {at} ms is not a plausible time (before December 2019 or more than "
            "a day ahead): check the year and the clock of the lab system"
        )
    return LabResult(tube=code, outcome=word, ct_orf1ab=c1, ct_n=cn, lab=lab[:40], tested_at=at)


def _columns(header: Iterable[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    keys = [header_key(h) for h in header]
    for name, aliases in _COLUMNS.items():
        for i, k in enumerate(keys):
            if k in aliases or k == header_key(name):
                index.setdefault(name, i)
    return index


def read_csv(text: str, *, lab: str = "") -> Parsed:
    """A lab system's CSV export: a header row, then one row per tube."""
    out = Parsed()
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or not any(h.strip() for h in header):
        out.problems.append(RowProblem(row=0, reason="the file is empty: no header row"))
        return out
    cols = _columns(header)
    missing = [c for c in _REQUIRED if c not in cols]
    if "lab" not in cols and not lab:
        missing.append("lab")
    body = [r for r in rows if any(c.strip() for c in r)]
    out.rows_in = len(body)
    if missing:
        out.problems.append(
            RowProblem(row=0, reason=f"missing column(s): {', '.join(missing)}; every row refused")
        )
        out.refused = out.rows_in
        return out

    def cell(r: list[str], name: str) -> str:
        i = cols.get(name)
        return r[i] if i is not None and i < len(r) else ""

    for n, r in enumerate(body, start=2):
        try:
            out.good.append(
                (
                    n,
                    make_result(
                        cell(r, "tube"),
                        cell(r, "outcome"),
                        cell(r, "ct_orf1ab"),
                        cell(r, "ct_n"),
                        cell(r, "lab") or lab,
                        cell(r, "tested_at"),
                    ),
                )
            )
        except _RowError as exc:
            out.refuse(n, str(exc), cell(r, "tube"))
    return out


def read_json(items: list[ResultIn], *, lab: str = "") -> Parsed:
    """The API's JSON batch (already shaped by msgspec): rows are numbered from 1."""
    out = Parsed(rows_in=len(items))
    for n, item in enumerate(items, start=1):
        try:
            try:
                at = round(item.tested_at.timestamp() * 1000)
            except (OverflowError, ValueError, OSError):
                # A year 1 or 9999 has no Unix time on this platform.
                raise _RowError(f"test time {item.tested_at} is not a plausible time") from None
            out.good.append(
                (n, make_result(item.tube, item.outcome, item.ct_orf1ab, item.ct_n,
                                item.lab or lab, at))
            )  # fmt: skip
        except _RowError as exc:
            out.refuse(n, str(exc), item.tube)
    return out


# -- HL7 v2 ORU^R01 -------------------------------------------------------------------


def _first(value: object) -> str:
    """The first component of the first repetition of an HL7 field, as text."""
    return str(value).split("~")[0].split("^")[0].strip()


def _field(seg: hl7.Segment, n: int) -> str:
    return str(seg[n]) if len(seg) > n else ""


def _obx_kind(ident: str) -> str:
    up = ident.upper()
    if "ORF1" in up:
        return "ct_orf1ab"
    if re.search(r"(^|[^A-Z])N([ _]?GENE|[ _]?CT|基因)", up) or up.split("^")[0] == "N":
        return "ct_n"
    return "outcome"


def _obx_outcome(value: str) -> str:
    for part in value.split("^"):
        if part.strip().lower() in _OUTCOME_WORDS:
            return part
    return value


def split_messages(text: str) -> list[str]:
    """The messages of an HL7 file: segments end in CR, LF or CRLF; each starts at MSH."""
    lines = [ln for ln in re.split(r"\r\n|\r|\n", text) if ln.strip()]
    messages: list[list[str]] = []
    for ln in lines:
        if ln.startswith("MSH"):
            messages.append([])
        if messages:
            messages[-1].append(ln)
    return ["\r".join(m) for m in messages]


def read_hl7(text: str, *, lab: str = "") -> Parsed:
    """ORU^R01 messages: one result per OBR group; the tube code in OBR-3 (filler
    order number) or SPM-2 (specimen id), the outcome and Ct values in OBX-5, the
    time in OBX-14, else OBR-7, else MSH-7; the lab from MSH-4 (sending facility).
    """
    out = Parsed()
    messages = split_messages(text)
    if not messages:
        out.problems.append(RowProblem(row=0, reason="no HL7 message (MSH segment) in the file"))
        return out
    for m, raw in enumerate(messages, start=1):
        try:
            msg = hl7.parse(raw)
        except (hl7.HL7Exception, IndexError, KeyError, ValueError) as exc:
            out.rows_in += 1
            out.refuse(out.rows_in, f"message {m}: not a valid HL7 message ({exc})")
            continue
        msh = msg.segment("MSH")
        msg_lab = _first(_field(msh, 4)) or lab
        msg_time = _first(_field(msh, 7))
        groups: list[dict[str, str]] = []
        for seg in msg:
            name = str(seg[0])
            if name == "OBR":
                groups.append(
                    {"tube": _first(_field(seg, 3)), "time": _first(_field(seg, 7)), "obr2":
                     _first(_field(seg, 2))}
                )  # fmt: skip
            elif not groups:
                continue
            elif name == "SPM":
                spm = [c for c in _field(seg, 2).split("^") if c.strip()]
                tubes = [c for c in spm if codes.classify(c) is codes.CodeKind.TUBE]
                if tubes and codes.classify(groups[-1]["tube"]) is not codes.CodeKind.TUBE:
                    groups[-1]["tube"] = tubes[0]
            elif name == "OBX":
                kind = _obx_kind(_field(seg, 3))
                value = _field(seg, 5)
                groups[-1][kind] = _obx_outcome(value) if kind == "outcome" else _first(value)
                when = _first(_field(seg, 14))
                if when:
                    groups[-1]["obx_time"] = when
                performer = _first(_field(seg, 23))
                if performer:
                    groups[-1]["lab"] = performer
        if not groups:
            out.rows_in += 1
            out.refuse(out.rows_in, f"message {m}: no OBR segment (no result in it)")
            continue
        for g, grp in enumerate(groups, start=1):
            out.rows_in += 1
            tube = grp["tube"] or grp["obr2"]
            try:
                result = make_result(
                    tube,
                    grp.get("outcome", ""),
                    grp.get("ct_orf1ab"),
                    grp.get("ct_n"),
                    grp.get("lab") or msg_lab,
                    (grp.get("obx_time") or grp["time"] or msg_time)[:14],
                )
            except _RowError as exc:
                out.refuse(out.rows_in, f"message {m}, OBR {g}: {exc}", tube)
            else:
                out.good.append((out.rows_in, result))
    return out


def read_file(name: str, data: bytes, *, lab: str = "") -> Parsed:
    """Pick the reader by content: HL7 starts with MSH (or a batch header), else CSV."""
    text = data.decode("utf-8-sig", errors="replace")
    head = text.lstrip()[:3]
    if head in ("MSH", "FHS", "BHS") or name.lower().endswith((".hl7", ".oru")):
        return read_hl7(text, lab=lab)
    return read_csv(text, lab=lab)
