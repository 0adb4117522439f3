"""The knock-on-door lists: each grid's residents not sampled, in walking order.

Ordered by building, unit and household (numbers in their numeric order), each
marked with how to reach them:

* ``door_medical`` - home isolation: medical staff sample at the door;
* ``home_sampling`` - elderly living alone or disabled: sampled at home;
* ``reminder`` - everyone else: a knock and a reminder to go to a point.

Vacant homes are never listed, nor residents away from the district, nor
households a grid team found moved away. What the team found at a door before
(``last_outcome``: not at home, refused, medical staff needed) is on the next
list, and a household that needs medical staff is marked ``door_medical``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import polars as pl

from sampling import localtime
from sampling.fonts import cjk_font
from sampling.lab.coverage import marked, moved

if TYPE_CHECKING:
    from pathlib import Path

MARKS: Final = ("door_medical", "home_sampling", "reminder")
MARK_TEXT: Final = {
    "door_medical": "上门采样（医护）/ door, medical staff",
    "home_sampling": "入户采样 / sample at home",
    "reminder": "提醒 / reminder",
}
COLUMNS: Final = ("grid", "building", "unit", "household", "name", "phone", "resident",
                  "mark", "labels", "colour", "last_outcome")  # fmt: skip


def _has(label: str) -> pl.Expr:
    return pl.col("labels").str.contains(label, literal=True)


def _numeric(col: str) -> pl.Expr:
    return pl.col(col).str.extract(r"(\d+)", 1).cast(pl.Int64, strict=False)


def mask(col: str) -> pl.Expr:
    """A resident code shown as its first 4 and last 4 characters."""
    c = pl.col(col)
    return pl.concat_str(c.str.slice(0, 4), pl.lit("**********"), c.str.slice(-4))


def door_list(marked_register: pl.LazyFrame, grid: str | None = None) -> pl.LazyFrame:
    """The not-sampled residents of the (eligible, marked) register, one grid or all."""
    frame = marked_register.filter(~pl.col("sampled") & ~moved())
    if grid is not None:
        frame = frame.filter(pl.col("grid") == grid)
    return (
        frame.with_columns(
            pl.when(_has("home_isolation") | (pl.col("door_outcome") == "medical"))
            .then(pl.lit("door_medical"))
            .when(_has("elderly_alone") | _has("disabled"))
            .then(pl.lit("home_sampling"))
            .otherwise(pl.lit("reminder"))
            .alias("mark"),
            mask("resident").alias("resident"),
            pl.col("door_outcome").alias("last_outcome"),
        )
        .sort(
            pl.col("grid"),
            _numeric("building"),
            pl.col("building"),
            _numeric("unit"),
            pl.col("unit"),
            _numeric("household"),
            pl.col("household"),
            pl.col("name"),
            nulls_last=True,
        )
        .select(COLUMNS)
    )


def door_lists(
    register: pl.LazyFrame, bindings: pl.LazyFrame, grid: str | None = None
) -> pl.LazyFrame:
    return door_list(marked(register, bindings), grid)


def sizes(doors: pl.LazyFrame) -> pl.LazyFrame:
    """[grid, door_medical, home_sampling, reminder, total] per grid."""
    return (
        doors.group_by("grid")
        .agg(
            *[(pl.col("mark") == m).sum().cast(pl.Int64).alias(m) for m in MARKS],
            pl.len().cast(pl.Int64).alias("total"),
        )
        .sort("grid")
    )


# -- the edges: files for the teams ---------------------------------------------------


def write_csv(doors: pl.DataFrame, path: Path) -> Path:
    doors.write_csv(path, include_bom=True)  # BOM: Excel opens Chinese text correctly
    return path


def write_xlsx(doors: pl.DataFrame, path: Path) -> Path:
    doors.write_excel(path, worksheet="doors", autofit=True, freeze_panes=(1, 0))
    return path


LABEL_TEXT: Final = {
    "permanent": "常住", "vacant": "空置", "home_isolation": "居家隔离",
    "home_observation": "居家观察", "assistance": "低保", "disabled": "残疾",
    "party_member": "党员", "elderly_alone": "独居老人",
}  # fmt: skip
COLOUR_TEXT: Final = {"green": "绿 green", "yellow": "黄 yellow", "red": "红 red"}
OUTCOME_TEXT: Final = {
    "sampled": "已入户采样", "not_home": "不在家", "refused": "拒绝", "moved": "已搬离",
    "medical": "需医护上门",
}  # fmt: skip
#: The outcome column on paper: one box to tick.
OUTCOME_BOXES: Final = "□采样 □不在家 □拒绝 □搬离 □需医护"


def labels_text(labels: str | None) -> str:
    return "、".join(LABEL_TEXT.get(x, x) for x in (labels or "").split(";") if x)


def write_pdf(
    doors: pl.DataFrame,
    path: Path,
    *,
    title: str,
    grid: str = "",
    round_id: str = "",
    tz: str = localtime.DEFAULT_TZ,
    now: float | None = None,
) -> Path:
    """A printable list, Chinese names in an embedded font (``sampling.fonts``).

    Every page is headed with the grid, the round, "page x of y" and when it was
    printed (district time); each household's labels and health-code colour are
    on its row, with an outcome column to tick at the door.
    """
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from sampling.printing import numbered_canvas

    font = cjk_font()
    printed = localtime.stamp(time.time() if now is None else now, tz, seconds=False)
    head = ParagraphStyle("head", fontName=font, fontSize=14, leading=18)
    cell = ParagraphStyle("cell", fontName=font, fontSize=8, leading=10)
    header: list[object] = [
        "楼栋 Bldg", "单元 Unit", "户 Hh", "姓名 Name", "电话 Phone", "居民码 Code",
        "标签 Labels", "健康码 Colour", "方式 How", "上次 Last", "结果 Outcome",
    ]  # fmt: skip
    rows: list[list[object]] = [header]
    shades: list[tuple[str, tuple[int, int], tuple[int, int], object]] = []
    tint = {"yellow": colors.HexColor("#ffe066"), "red": colors.HexColor("#ff8787")}
    last = "last_outcome" in doors.columns
    for n, r in enumerate(doors.iter_rows(named=True), start=1):
        colour = r.get("colour") or "green"
        # A viewer's list has no name or phone columns: those cells stay empty.
        rows.append([
            r["building"], r["unit"], r["household"], r.get("name") or "", r.get("phone") or "",
            r["resident"],
            Paragraph(labels_text(r.get("labels")), cell), COLOUR_TEXT.get(colour, colour),
            Paragraph(MARK_TEXT[r["mark"]], cell),
            OUTCOME_TEXT.get(r["last_outcome"] or "", "") if last else "", OUTCOME_BOXES,
        ])  # fmt: skip
        if colour in tint:
            shades.append(("BACKGROUND", (7, n), (7, n), tint[colour]))
    table = Table(rows, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 8),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                *shades,
            ]
        )
    )
    where = "  ".join(x for x in (f"网格 Grid {grid}" if grid else "",
                                   f"轮次 Round {round_id}" if round_id else "") if x)  # fmt: skip

    doc = SimpleDocTemplate(
        str(path), pagesize=landscape(A4), title=title, topMargin=16 * mm, leftMargin=10 * mm,
        rightMargin=10 * mm,
    )  # fmt: skip
    doc.build(
        [Paragraph(title, head), Spacer(1, 6), table],
        canvasmaker=numbered_canvas(font, where, printed),
    )
    return path
