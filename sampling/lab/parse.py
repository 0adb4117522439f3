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
#
# Parsed by the ``hl7`` library: each message with the separators and escape
# character its own MSH-1/MSH-2 declare (a lab may use other than ``|^~\&``),
# every value unescaped (``\F\``, ``\S\``, ``\X..\`` ...) by the library.


def _components(seg: hl7.Segment, n: int) -> list[str]:
    """The unescaped components of field ``n``'s first repetition ([] when absent)."""
    if n >= len(seg):
        return []
    rep = seg(n)(1)
    count = len(rep) if isinstance(rep, hl7.Repetition) else 1
    out = []
    for c in range(1, count + 1):
        try:
            out.append(str(seg.extract_field(1, n, 1, c, 1)).strip())
        except IndexError:
            out.append("")
    return out


def _first(seg: hl7.Segment, n: int) -> str:
    """The first component of the first repetition of field ``n``, unescaped."""
    parts = _components(seg, n)
    return parts[0] if parts else ""


def _obx_kind(ident: list[str]) -> str:
    up = " ".join(ident).upper()
    if "ORF1" in up:
        return "ct_orf1ab"
    code = ident[0].upper() if ident else ""
    if code == "N" or re.search(r"(^|[^A-Z])N([ _]?GENE|[ _]?CT|基因)", up):
        return "ct_n"
    return "outcome"


def _obx_outcome(parts: list[str]) -> str:
    for part in parts:
        if part.strip().lower() in _OUTCOME_WORDS:
            return part
    return parts[0] if parts else ""


def _norm(text: str) -> str:
    # The library splits segments on CR only; files often end lines in LF or CRLF.
    return re.sub(r"\r\n|\n|\r", "\r", text.lstrip("\ufeff")).strip()


def _trailer_count(container: hl7.Batch | hl7.File, name: str) -> int | None:
    trailer = container.trailer
    if trailer is None or len(trailer) < 2:
        return None
    text = _first(trailer, 1)
    return int(text) if text.isdigit() else None


def messages(text: str, out: Parsed | None = None) -> list[hl7.Message]:
    """Every message of an HL7 text: one message, a batch (BHS..BTS) or a file
    (FHS..FTS) of batches, read with the library's file, batch and message parsers.

    A batch or file whose envelope the library refuses is read message by message
    (``hl7.split_file``), so one bad envelope does not lose good results; a trailer
    whose count disagrees is reported (row 0) when ``out`` is given.
    """
    norm = _norm(text)
    if not norm:
        return []
    found: list[hl7.Message] = []
    try:
        if norm.startswith("FHS"):
            file = hl7.parse_file(norm)
            batches: list[hl7.Batch] = list(file)
        elif norm.startswith("BHS"):
            batches = [hl7.parse_batch(norm)]
        else:
            return [hl7.parse(m) for m in hl7.split_file(norm)]
    except (hl7.HL7Exception, ValueError, IndexError) as exc:
        if out is not None:
            out.problems.append(RowProblem(row=0, reason=f"HL7 envelope not valid ({exc}); "
                                           "read message by message"))  # fmt: skip
        return [hl7.parse(m) for m in hl7.split_file(norm)]
    for batch in batches:
        said = _trailer_count(batch, "BTS")
        if out is not None and said is not None and said != len(batch):
            out.problems.append(
                RowProblem(row=0, reason=f"batch trailer BTS-1 says {said} messages, "
                           f"the batch holds {len(batch)}")
            )  # fmt: skip
        found.extend(batch)
    return found


def control_id(msg: hl7.Message) -> str:
    """MSH-10, the sender's message control id (a retransmission repeats it)."""
    return _first(msg.segment("MSH"), 10)


def read_message(msg: hl7.Message, out: Parsed, *, lab: str = "", m: int = 1) -> None:
    """The results of one parsed ORU^R01 message, added to ``out``."""
    msh = msg.segment("MSH")
    msg_lab = _first(msh, 4) or lab
    msg_time = _first(msh, 7)
    groups: list[dict[str, str]] = []
    for seg in msg:
        name = str(seg[0])
        if name == "OBR":
            groups.append({"tube": _first(seg, 3), "time": _first(seg, 7), "obr2": _first(seg, 2)})
        elif not groups:
            continue
        elif name == "SPM":
            tubes = [c for c in _components(seg, 2) if codes.classify(c) is codes.CodeKind.TUBE]
            if tubes and codes.classify(groups[-1]["tube"]) is not codes.CodeKind.TUBE:
                groups[-1]["tube"] = tubes[0]
        elif name == "OBX":
            kind = _obx_kind(_components(seg, 3))
            value = _components(seg, 5)
            groups[-1][kind] = _obx_outcome(value) if kind == "outcome" else (value or [""])[0]
            when = _first(seg, 14)
            if when:
                groups[-1]["obx_time"] = when
            performer = _first(seg, 23)
            if performer:
                groups[-1]["lab"] = performer
    if not groups:
        out.rows_in += 1
        out.refuse(out.rows_in, f"message {m}: no OBR segment (no result in it)")
        return
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


def read_hl7(text: str, *, lab: str = "") -> Parsed:
    """ORU^R01 messages: one result per OBR group; the tube code in OBR-3 (filler
    order number) or SPM-2 (specimen id), the outcome and Ct values in OBX-5, the
    time in OBX-14, else OBR-7, else MSH-7; the lab from OBX-23 (performing
    organisation), else MSH-4 (sending facility).
    """
    out = Parsed()
    found = messages(text, out)
    if not found:
        out.problems.append(RowProblem(row=0, reason="no HL7 message (MSH segment) in the file"))
        return out
    for m, msg in enumerate(found, start=1):
        try:
            read_message(msg, out, lab=lab, m=m)
        except (hl7.HL7Exception, IndexError, KeyError, ValueError) as exc:
            out.rows_in += 1
            out.refuse(out.rows_in, f"message {m}: not a valid HL7 message ({exc})")
    return out


def read_file(name: str, data: bytes, *, lab: str = "") -> Parsed:
    """Pick the reader by content: HL7 starts with MSH (or a batch header), else CSV."""
    text = data.decode("utf-8-sig", errors="replace")
    head = text.lstrip()[:3]
    if head in ("MSH", "FHS", "BHS") or name.lower().endswith((".hl7", ".oru")):
        return read_hl7(text, lab=lab)
    return read_csv(text, lab=lab)
