"""The knock-on-door lists: each grid's residents not sampled, in walking order.

Ordered by building, unit and household (numbers in their numeric order), each
marked with how to reach them:

* ``door_medical`` - home isolation: medical staff sample at the door;
* ``home_sampling`` - elderly living alone or disabled: sampled at home;
* ``reminder`` - everyone else: a knock and a reminder to go to a point.

Vacant homes are never listed, nor residents away from the district.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import polars as pl

from sampling.fonts import cjk_font
from sampling.lab.coverage import marked

if TYPE_CHECKING:
    from pathlib import Path

MARKS: Final = ("door_medical", "home_sampling", "reminder")
MARK_TEXT: Final = {
    "door_medical": "上门采样（医护）/ door, medical staff",
    "home_sampling": "入户采样 / sample at home",
    "reminder": "提醒 / reminder",
}
COLUMNS: Final = ("grid", "building", "unit", "household", "name", "phone", "resident",
                  "mark", "labels", "colour")  # fmt: skip


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
    frame = marked_register.filter(~pl.col("sampled"))
    if grid is not None:
        frame = frame.filter(pl.col("grid") == grid)
    return (
        frame.with_columns(
            pl.when(_has("home_isolation"))
            .then(pl.lit("door_medical"))
            .when(_has("elderly_alone") | _has("disabled"))
            .then(pl.lit("home_sampling"))
            .otherwise(pl.lit("reminder"))
            .alias("mark"),
            mask("resident").alias("resident"),
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


def write_pdf(doors: pl.DataFrame, path: Path, *, title: str) -> Path:
    """A printable list, Chinese names in an embedded font (``sampling.fonts``)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = cjk_font()
    head = ParagraphStyle("head", fontName=font, fontSize=14, leading=18)
    header = ["楼栋 Bldg", "单元 Unit", "户 Hh", "姓名 Name", "电话 Phone", "居民码 Code",
              "方式 How", "完成 Done"]  # fmt: skip
    rows = [header] + [
        # A viewer's list has no name or phone columns: those cells stay empty.
        [r["building"], r["unit"], r["household"], r.get("name") or "", r.get("phone") or "",
         r["resident"], MARK_TEXT[r["mark"]], ""]
        for r in doors.iter_rows(named=True)
    ]  # fmt: skip
    table = Table(rows, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 9),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    doc = SimpleDocTemplate(str(path), pagesize=landscape(A4), title=title)
    doc.build([Paragraph(title, head), Spacer(1, 8), table])
    return path
