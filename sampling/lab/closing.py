"""A round's closing report: what the round did, from its archived tables as of the close.

Built when the round closes (``sampling.closing``), from the same frames as the
reconciliation (:mod:`sampling.lab.report`), so every figure here is the figure
the reports and the live page show:

* ``summary``: the round, when and by whom it closed, the data time, the number
  bound and resulted, and the totals of every section below;
* ``states``: every bound resident in exactly one state, adding up to the number
  bound (the report is not written if they do not);
* ``coverage_street`` / ``coverage_community`` / ``coverage_grid``;
* ``resample_open``: re-sample orders not yet closed (nothing bound yet, or a
  re-sample tube bound that has no result);
* ``discrepancies``: tubes intake found missing, extra or damaged, results for
  tubes no one bound (orphans) and results held for a person to decide;
* ``no_shows``: residents missed in this round and in the one before it (and
  maybe more: ``current_run`` says how many rounds in a row).

Written as one CSV per section (UTF-8 with BOM, for Excel), one XLSX (a sheet per
section) and a printable PDF (landscape A4, the CJK font, each page headed with
the round and "page x of y"), twice: ``admin/`` in full and ``viewer/`` without
names and phone numbers (as a viewer's door list). Headings are Chinese first,
times in the district's time zone.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
import polars as pl

from sampling import archive, localtime
from sampling.binding.models import Round
from sampling.lab import reconcile, report, sources
from sampling.schema import Base

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

Variant = Literal["admin", "viewer"]
VARIANTS: Final[tuple[Variant, ...]] = ("admin", "viewer")
#: Columns that name a resident: dropped from the viewer's copy.
PERSONAL_COLUMNS: Final = ("name", "phone")
#: Rows of one section printed in the PDF; the CSV and XLSX hold them all.
PDF_ROWS: Final = 400
#: Sections, in the report's order: key -> Chinese-first title.
SECTIONS: Final = {
    "summary": "概况 Summary",
    "states": "居民状态 Every bound resident's state",
    "coverage_street": "覆盖率（街道）Coverage per street",
    "coverage_community": "覆盖率（社区）Coverage per community",
    "coverage_grid": "覆盖率（网格）Coverage per grid",
    "resample_open": "未完成的复采单 Open re-sample orders",
    "discrepancies": "差异 Discrepancies",
    "no_shows": "连续未采 Missed in this round and the one before",
}
#: Column headings, Chinese first.
HEADINGS: Final = {
    "item": "项目 item", "value": "数值 value", "state": "状态 state",
    "residents": "人数 residents", "street": "街道 street", "community": "社区 community",
    "grid": "网格 grid", "sampled": "已采 sampled", "missed": "未采 missed",
    "coverage_pct": "覆盖率% coverage", "moved": "搬离 moved", "not_home": "不在家 not home",
    "refused": "拒绝 refused", "medical": "需医护 medical", "priority": "优先 priority",
    "order": "次序 order", "order_state": "单据 order state", "reason": "原因 reason",
    "tube": "管码 tube", "ref": "编号 ref", "name": "姓名 name", "phone": "电话 phone",
    "building": "楼栋 building", "unit": "单元 unit", "household": "户 household",
    "resample_tube": "复采管 re-sample tube", "resampled_at": "复采时间 re-sampled at",
    "kind": "类型 kind", "box": "箱码 box", "lab": "实验室 lab", "detail": "说明 detail",
    "current_run": "连续未采轮数 rounds in a row", "longest_run": "最长连续 longest run",
    "missed_rounds": "未采轮次 rounds missed",
}  # fmt: skip
STATE_TEXT: Final = {
    "negative": "阴性 negative", "positive": "阳性 positive", "invalid": "无效 invalid",
    "lost": "丢失或损坏 lost", "awaiting": "待出结果 awaiting",
}  # fmt: skip
KIND_TEXT: Final = {
    "missing": "缺失 missing", "extra": "多出 extra", "damaged": "破损 damaged",
    "orphan": "无绑定结果 orphan result", "held": "待复核结果 held result",
}  # fmt: skip
ORDER_TEXT: Final = {"open": "待采 open", "sampled": "已采待结果 sampled"}
PRIORITY_TEXT: Final = {"urgent": "紧急 urgent", "normal": "一般 normal"}
#: Where the closing report of a round lives under the data directory.
DIR_NAME: Final = "closing"
SUMMARY_FILE: Final = "summary.json"


class ClosingError(Exception):
    pass


class CoverageTotal(Base, frozen=True, kw_only=True):
    residents: int
    sampled: int
    pct: float


class ClosingSummary(Base, frozen=True, kw_only=True):
    """The closing report in numbers (``states`` add up to ``bound``)."""

    round: str
    name: str
    created_at: float | None
    closed_at: float | None
    closed_by: str
    reason: str
    #: Every change accepted before this time is in the report.
    as_of: float | None
    written_at: float
    bound: int
    #: Residents whose latest attempt has a result (negative, positive, invalid).
    resulted: int
    states: dict[str, int]
    coverage: CoverageTotal
    resample_open: int
    discrepancies: int
    no_shows: int
    #: The files of the report, by format: ``pdf``, ``xlsx``, ``csv:<section>``.
    files: list[str]


@dataclass(frozen=True)
class Closing:
    summary: ClosingSummary
    #: Section key -> frame with the plain (English) column names.
    sections: dict[str, pl.DataFrame]


def directory(data_dir: Path, round_id: str) -> Path:
    return data_dir / "reports" / round_id / DIR_NAME


def file_name(round_id: str, fmt: str, section: str = "") -> str:
    return f"closing-{round_id}-{section}.{fmt}" if section else f"closing-{round_id}.{fmt}"


# -- building ------------------------------------------------------------------------------


def _close_entry(data_dir: Path, round_id: str) -> dict[str, Any]:
    """The journal's ``round_close`` entry: when (ms), who, why; empty if not closed."""
    found = (
        archive.journal(data_dir, round_id)
        .filter(pl.col("kind") == "round_close")
        .select("ts", "device", "reason")
        .collect()
    )
    return found.row(-1, named=True) if found.height else {}


def _round_record(data_dir: Path, round_id: str) -> Round | None:
    path = archive.round_dir(data_dir, round_id) / archive.ROUND_FILE
    if not path.exists():
        return None
    return msgspec.json.decode(path.read_bytes(), type=Round)


def _ref(col: str = "rhash") -> pl.Expr:
    # The keyed hash's first 8 hex digits: how orders and discrepancies name a resident.
    return pl.col(col).str.slice(0, 8).alias("ref")


def _intake(data_dir: Path, round_id: str) -> pl.LazyFrame:
    # The reconciliation's intake columns, and where and in what condition each was found.
    schema = pl.Schema(
        [*sources.SCHEMAS["intake"].items(), ("where", pl.String()), ("condition", pl.String())]
    )
    return sources.scan(sources.archive_dir(data_dir, round_id) / "intake.parquet", schema)


def _discrepancies(intake: pl.LazyFrame, lab_rows: Iterable[dict[str, Any]]) -> pl.LazyFrame:
    found = intake.filter(pl.col("status") != "received").select(
        pl.col("status").alias("kind"),
        "box",
        "tube",
        pl.lit(None, pl.Utf8).alias("lab"),
        "residents",
        pl.concat_str(
            pl.lit("where: "), pl.col("where").fill_null(""),
            pl.lit("; condition: "), pl.col("condition").fill_null("ok"),
        ).alias("detail"),
    )  # fmt: skip
    schema = found.collect_schema()
    lab = pl.LazyFrame(list(lab_rows), schema=schema)
    return pl.concat([found, lab]).sort("kind", "box", "tube", nulls_last=True)


def build(
    data_dir: Path,
    round_id: str,
    *,
    lab_discrepancies: Iterable[dict[str, Any]] = (),
    now: float | None = None,
) -> Closing:
    """The closing report from the round's archived tables (run an archive pass first).

    ``lab_discrepancies`` are the orphan and held results (from Redis), as rows of
    [kind, box, tube, lab, residents, detail].
    """
    names = ("states", "state_counts", "resample_orders", "coverage_street",
             "coverage_community", "coverage_grid", "missed_in_a_row")  # fmt: skip
    try:
        got = report.collect(data_dir, round_id, names)
    except report.ReportError as exc:
        raise ClosingError(str(exc)) from exc
    facts = report.summary(round_id, got)  # raises when the states do not add up
    discrepancies = _discrepancies(_intake(data_dir, round_id), lab_discrepancies).collect()
    states = facts["states"]
    bound = int(facts["bound"])
    resulted = sum(states.get(s, 0) for s in ("negative", "positive", "invalid"))
    orders = got["resample_orders"]
    open_orders = orders.filter(pl.col("order_state").is_in(("open", "sampled"))).select(
        "priority", "order", "order_state", pl.col("state").alias("reason"), "tube", _ref(),
        "name", "phone", "street", "community", "grid", "building", "unit", "household",
        "resample_tube", "resampled_at",
    )  # fmt: skip
    no_shows = got["missed_in_a_row"].filter(pl.col("current_run") >= 2).select(
        _ref(), "name", "phone", "street", "community", "grid", "building", "unit",
        "household", "current_run", "longest_run", "missed_rounds",
    )  # fmt: skip
    counts = got["state_counts"].with_columns(pl.col("state").cast(pl.String))
    cover = facts.get("coverage") or {"residents": 0, "sampled": 0, "pct": 0.0}
    closed = _close_entry(data_dir, round_id)
    record = _round_record(data_dir, round_id)
    summary = ClosingSummary(
        round=round_id,
        name=record.name if record else "",
        created_at=record.created_at if record else None,
        closed_at=closed["ts"] / 1000 if closed else None,
        closed_by=(closed.get("device") or "") if closed else "",
        reason=(closed.get("reason") or "") if closed else "",
        as_of=archive.as_of(data_dir, round_id),
        written_at=time.time() if now is None else now,
        bound=bound,
        resulted=resulted,
        states={s: int(n) for s, n in states.items()},
        coverage=CoverageTotal(**cover),
        resample_open=open_orders.height,
        discrepancies=discrepancies.height,
        no_shows=no_shows.height,
        files=[],
    )
    sections = {
        "summary": pl.DataFrame(schema={"item": pl.String, "value": pl.String}),
        "states": counts,
        "coverage_street": got["coverage_street"],
        "coverage_community": got["coverage_community"],
        "coverage_grid": got["coverage_grid"],
        "resample_open": open_orders,
        "discrepancies": discrepancies,
        "no_shows": no_shows,
    }
    return Closing(summary=summary, sections=sections)


# -- presenting: words, local times, Chinese-first headings ------------------------------------


def _when(epoch: float | None, tz: str) -> str:
    return localtime.stamp(epoch, tz) if epoch is not None else "—"


def summary_rows(s: ClosingSummary, tz: str) -> list[tuple[str, str]]:
    """The summary section as (item, value) rows, as printed."""
    rows = [
        ("轮次 round", f"{s.round} {s.name}".strip()),
        ("创建于 created", _when(s.created_at, tz)),
        ("关闭于 closed", _when(s.closed_at, tz)),
        ("关闭人 closed by", s.closed_by or "—"),
        ("原因 reason", s.reason or "—"),
        ("数据截至 data as of", _when(s.as_of, tz)),
        ("报告生成 written", _when(s.written_at, tz)),
        ("已绑定 bound", str(s.bound)),
        ("已出结果 resulted", str(s.resulted)),
    ]
    rows += [(STATE_TEXT[k], str(s.states.get(k, 0))) for k in reconcile.STATES]
    rows += [
        ("各状态合计 states add up to", f"{sum(s.states.values())} = {s.bound}"),
        ("应采 residents (register)", str(s.coverage.residents)),
        ("已采 sampled", str(s.coverage.sampled)),
        ("覆盖率 coverage", f"{s.coverage.pct:.2f}%"),
        ("未完成复采单 open re-sample orders", str(s.resample_open)),
        ("差异 discrepancies", str(s.discrepancies)),
        ("连续未采 missed in a row", str(s.no_shows)),
    ]
    return rows


def _readable(key: str, frame: pl.DataFrame, tz: str) -> pl.DataFrame:
    """The section as people read it: words for codes, local times, every cell text."""
    if key == "states":
        total = pl.DataFrame({"state": ["合计 total = 已绑定 bound"],
                              "residents": [int(frame["residents"].sum())]})  # fmt: skip
        words = pl.col("state").cast(pl.String).replace(STATE_TEXT)
        frame = pl.concat([frame.with_columns(words), total])
    if "kind" in frame.columns:
        frame = frame.with_columns(pl.col("kind").cast(pl.String).replace(KIND_TEXT))
    if "reason" in frame.columns and key == "resample_open":
        frame = frame.with_columns(pl.col("reason").cast(pl.String).replace(STATE_TEXT))
    if "order_state" in frame.columns:
        frame = frame.with_columns(pl.col("order_state").cast(pl.String).replace(ORDER_TEXT))
    if "priority" in frame.columns:
        frame = frame.with_columns(pl.col("priority").cast(pl.String).replace(PRIORITY_TEXT))
    if "resampled_at" in frame.columns:
        frame = frame.with_columns(
            pl.col("resampled_at").map_elements(
                lambda ms: localtime.stamp(ms / 1000, tz), return_dtype=pl.String
            )
        )
    return frame


def sheet(closing: Closing, key: str, variant: Variant, tz: str) -> pl.DataFrame:
    """One section as written: readable cells, the variant's columns, Chinese-first headings."""
    if key == "summary":
        rows = summary_rows(closing.summary, tz)
        frame = pl.DataFrame(
            {"item": [r[0] for r in rows], "value": [r[1] for r in rows]},
            schema={"item": pl.String, "value": pl.String},
        )
    else:
        frame = _readable(key, closing.sections[key], tz)
    if variant == "viewer":
        frame = frame.drop(PERSONAL_COLUMNS, strict=False)
    return frame.rename({c: HEADINGS.get(c, c) for c in frame.columns})


# -- writing ----------------------------------------------------------------------------------


def write(closing: Closing, data_dir: Path, tz: str = localtime.DEFAULT_TZ) -> ClosingSummary:
    """Write both variants under ``<data_dir>/reports/<round>/closing/``; returns the
    summary with the file names. Written beside, then swapped in: a reader never
    downloads half of a report."""
    rid = closing.summary.round
    target = directory(data_dir, rid)
    fresh = target.with_name(f".{DIR_NAME}-{time.time_ns()}")
    files = [file_name(rid, "pdf"), file_name(rid, "xlsx")]
    files += [file_name(rid, "csv", key) for key in SECTIONS]
    summary = msgspec.structs.replace(closing.summary, files=files)
    done = Closing(summary=summary, sections=closing.sections)
    for variant in VARIANTS:
        out = fresh / variant
        out.mkdir(parents=True)
        sheets = {key: sheet(done, key, variant, tz) for key in SECTIONS}
        for key, frame in sheets.items():
            frame.write_csv(out / file_name(rid, "csv", key), include_bom=True)
        _xlsx(sheets, out / file_name(rid, "xlsx"))
        _pdf(done, sheets, out / file_name(rid, "pdf"), tz)
    (fresh / SUMMARY_FILE).write_bytes(msgspec.json.encode(summary))
    old = target.with_name(f".{DIR_NAME}-old-{time.time_ns()}")
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return summary


def read_summary(data_dir: Path, round_id: str) -> ClosingSummary | None:
    path = directory(data_dir, round_id) / SUMMARY_FILE
    if not path.exists():
        return None
    return msgspec.json.decode(path.read_bytes(), type=ClosingSummary)


def path_of(data_dir: Path, round_id: str, variant: Variant, name: str) -> Path | None:
    """A written file of the report, or None: ``name`` must be one the summary lists."""
    summary = read_summary(data_dir, round_id)
    if summary is None or name not in summary.files:
        return None
    found = directory(data_dir, round_id) / variant / name
    return found if found.exists() else None


def _xlsx(sheets: dict[str, pl.DataFrame], path: Path) -> None:
    from xlsxwriter import Workbook

    with Workbook(str(path)) as book:
        for key, frame in sheets.items():
            # Sheet names: at most 31 characters, so the section keys, not titles.
            frame.write_excel(book, worksheet=key, autofit=True, freeze_panes=(1, 0))


def _pdf(closing: Closing, sheets: dict[str, pl.DataFrame], path: Path, tz: str) -> None:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    from sampling.fonts import cjk_font
    from sampling.printing import numbered_canvas

    font = cjk_font()
    s = closing.summary
    title = f"轮次结案报告 Round closing report: {s.round} {s.name}".strip()
    head = ParagraphStyle("head", fontName=font, fontSize=15, leading=20)
    sub = ParagraphStyle("sub", fontName=font, fontSize=11, leading=15, spaceBefore=8)
    note = ParagraphStyle("note", fontName=font, fontSize=8, leading=10)
    cell = ParagraphStyle("cell", fontName=font, fontSize=7, leading=9)

    def table(frame: pl.DataFrame, widths: list[float] | None = None) -> Table:
        rows: list[list[object]] = [[Paragraph(c, cell) for c in frame.columns]]
        for row in frame.head(PDF_ROWS).iter_rows():
            rows.append(["" if v is None else str(v) for v in row])
        made = Table(rows, repeatRows=1, colWidths=widths, hAlign="LEFT")
        made.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), font, 7),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ]
            )
        )
        return made

    story: list[Any] = [
        Paragraph(title, head),
        Paragraph(report.as_of_line(s.as_of, tz), note),
        Spacer(1, 4),
    ]
    for key, frame in sheets.items():
        heading = Paragraph(f"{SECTIONS[key]}（{frame.height} 行 rows）", sub)
        if key == "summary":
            heading = Paragraph(SECTIONS[key], sub)
            body: list[Any] = [table(frame, [70 * mm, 90 * mm])]
        elif frame.height == 0:
            body = [Paragraph("无 none", note)]
        else:
            body = [table(frame)]
            if frame.height > PDF_ROWS:
                body.append(Paragraph(
                    f"只印前 {PDF_ROWS} 行；全部 {frame.height} 行见 CSV / XLSX。"
                    f" First {PDF_ROWS} of {frame.height} rows; all are in the CSV and XLSX.",
                    note,
                ))  # fmt: skip
        story.append(KeepTogether([heading, body[0]]))
        story.extend(body[1:])
    printed = localtime.stamp(s.written_at, tz, seconds=False)
    doc = SimpleDocTemplate(
        str(path), pagesize=landscape(A4), title=title, topMargin=16 * mm, leftMargin=10 * mm,
        rightMargin=10 * mm, author="sampling",
    )  # fmt: skip
    left = f"轮次 Round {s.round}  结案报告 closing report"
    doc.build(story, canvasmaker=numbered_canvas(font, left, printed))
