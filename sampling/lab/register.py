"""Importing the population register: who lives where, and with which labels.

Community workers keep the register in spreadsheets, so it arrives as CSV, XLSX
or Parquet, with English or Chinese headers. Every row is checked (resident code
check character, required values, known labels and colours, duplicates); a dry
run reports every bad row with its row number and reason and stores nothing.
An import writes the good rows to ``<data_dir>/register/register.parquet`` with
the resident's keyed hash (``rhash``), which is what reconciliation joins on:
names and phones stay in this file and never reach Redis.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

import fastexcel
import polars as pl

from sampling import codes
from sampling.binding.models import RiskFlag, RiskUpdate
from sampling.errors import BadInput
from sampling.lab.models import RegisterReport, RowProblem
from sampling.lab.parse import header_key

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sampling.binding.service import Binder
    from sampling.privacy import ResidentHasher

REGISTER_FILE: Final = "register.parquet"
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "resident": ("resident", "resident_code", "code", "id", "id_number", "身份证号", "居民码"),
    "name": ("name", "姓名"),
    "phone": ("phone", "mobile", "tel", "电话", "手机", "手机号"),
    "street": ("street", "town", "街道", "乡镇"),
    "community": ("community", "village", "社区", "村"),
    "grid": ("grid", "网格"),
    "building": ("building", "compound", "楼栋", "楼号"),
    "unit": ("unit", "单元"),
    "household": ("household", "room", "户号", "房号", "门牌"),
    "labels": ("labels", "status", "household_status", "标签", "户标签", "人员类别"),
    "colour": ("colour", "color", "health_code", "健康码"),
    "away": ("away", "away_from_district", "外出", "不在辖区"),
}
REQUIRED: Final = ("resident", "name", "street", "community", "grid", "building", "unit",
                   "household")  # fmt: skip
#: Columns whose cell may not be empty.
NON_EMPTY: Final = ("resident", "name", "street", "community", "grid")
LABELS: Final[dict[str, tuple[str, ...]]] = {
    "permanent": ("permanent", "permanent_resident", "常住", "常住户", "常住人口"),
    "vacant": ("vacant", "empty", "空置", "空置户", "空户"),
    "home_isolation": ("home_isolation", "isolation", "居家隔离", "隔离"),
    "home_observation": ("home_observation", "observation", "居家观察", "居家健康监测"),
    "assistance": ("assistance", "assistance_recipient", "低保", "低保户", "救助对象"),
    "disabled": ("disabled", "残疾", "残疾人", "残疾人户"),
    "party_member": ("party_member", "party_member_family", "党员", "党员户", "党员家庭"),
    "elderly_alone": ("elderly_alone", "elderly_living_alone", "独居老人", "独居"),
}
COLOURS: Final[dict[str, str]] = {
    "": "green", "green": "green", "绿": "green", "绿码": "green", "g": "green",
    "yellow": "yellow", "黄": "yellow", "黄码": "yellow", "y": "yellow",
    "red": "red", "红": "red", "红码": "red", "r": "red",
}  # fmt: skip
AWAY: Final[dict[str, bool]] = {
    "": False, "0": False, "no": False, "n": False, "false": False, "否": False,
    "1": True, "yes": True, "y": True, "true": True, "是": True, "外出": True,
}  # fmt: skip
_LABEL_OF: Final = {alias: name for name, aliases in LABELS.items() for alias in aliases}
#: The stored register's schema, in order. ``rkey`` is ``rhash`` as an unsigned
#: 64-bit integer: joins on it are several times faster than on the hex text.
SCHEMA: Final = pl.Schema(
    {
        "resident": pl.String, "rhash": pl.String, "name": pl.String, "phone": pl.String,
        "street": pl.String, "community": pl.String, "grid": pl.String,
        "building": pl.String, "unit": pl.String, "household": pl.String,
        "labels": pl.String, "colour": pl.String, "away": pl.Boolean, "rkey": pl.UInt64,
    }
)  # fmt: skip


class EmptyFile(BadInput):
    code = "empty_file"


class UnreadableFile(BadInput):
    """Not a file the register is read from: an unknown type, or a damaged one."""

    code = "unreadable_file"


#: The register's file types, by suffix.
TYPES: Final = {
    ".csv": "CSV",
    ".xlsx": "XLSX",
    ".xlsm": "XLSX",
    ".xls": "XLS",
    ".parquet": "Parquet",
}


def read_raw(path: Path) -> pl.LazyFrame:
    """The file's cells as text, headers normalised, with ``_row`` (header = row 1)."""
    suffix = path.suffix.lower()
    if suffix not in TYPES:
        raise UnreadableFile(
            f"{path.name}: unknown file type {suffix or '(none)'}; the register is read "
            "from CSV, XLSX or Parquet",
            file=path.name,
        )
    if path.stat().st_size == 0:
        raise EmptyFile(f"{path.name} is empty", file=path.name)
    try:
        frame = _open(path, suffix)
        names = frame.collect_schema().names()
    except pl.exceptions.NoDataError:
        raise EmptyFile(f"{path.name} is empty", file=path.name) from None
    except (pl.exceptions.PolarsError, OSError, fastexcel.FastExcelError) as exc:
        # A damaged or mislabelled file: one line for the person, not a traceback.
        raise UnreadableFile(
            f"{path.name} cannot be read as {TYPES[suffix]}: {_first_line(exc)}",
            file=path.name,
        ) from None
    renames: dict[str, str] = {}
    for original in names:
        key = header_key(original)
        for canon, aliases in COLUMNS.items():
            if (key in aliases or key == canon) and canon not in renames.values():
                renames[original] = canon
    return frame.select([pl.col(o).alias(c) for o, c in renames.items()]).with_row_index(
        "_row", offset=2
    )


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _open(path: Path, suffix: str) -> pl.LazyFrame:
    if suffix in (".xlsx", ".xlsm", ".xls"):
        return pl.read_excel(path, infer_schema_length=0).lazy()
    if suffix == ".parquet":
        return pl.scan_parquet(path).select(pl.all().cast(pl.String))
    return pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy")


def _labels(col: pl.Expr) -> pl.Expr:
    """``;``-separated labels (also , 、 | ；) as a list of canonical names, unknown -> null."""
    return (
        col.fill_null("")
        .str.replace_all(r"[,、|；，]", ";")
        .str.split(";")
        .list.eval(
            pl.element()
            .str.strip_chars()
            .str.to_lowercase()
            .str.replace_all(r"[\s\-]+", "_")
            .filter(pl.element().str.len_chars() > 0)
            .replace_strict(_LABEL_OF, default=None, return_dtype=pl.String)
        )
    )


def validate(raw: pl.LazyFrame, hasher: ResidentHasher) -> pl.LazyFrame:
    """Every row with its canonical values and ``reason`` (null for a good row)."""
    present = raw.collect_schema().names()
    frame = raw.with_columns(
        [pl.lit("", pl.String).alias(c) for c in COLUMNS if c not in present]
    ).with_columns(
        [pl.col(c).fill_null("").str.strip_chars() for c in COLUMNS],
    )
    frame = frame.with_columns(
        pl.col("resident").str.to_uppercase(),
        _labels(pl.col("labels")).alias("_labels"),
        pl.col("colour")
        .str.to_lowercase()
        .replace_strict(COLOURS, default=None, return_dtype=pl.String)
        .alias("_colour"),
        pl.col("away")
        .str.to_lowercase()
        .replace_strict(AWAY, default=None, return_dtype=pl.Boolean)
        .alias("_away"),
    )
    frame = frame.with_columns(
        pl.col("resident")
        .map_batches(
            lambda s: pl.Series(
                [codes.is_valid(c, codes.CodeKind.RESIDENT) for c in s], dtype=pl.Boolean
            ),
            return_dtype=pl.Boolean,
        )
        .alias("_valid"),
        pl.col("_row").min().over("resident").alias("_first"),
    )
    reason: Any = pl.when(pl.col("resident") == "").then(pl.lit("the resident code is missing"))
    for c in NON_EMPTY[1:]:
        reason = reason.when(pl.col(c) == "").then(pl.lit(f"the {c} is missing"))
    reason = (
        reason.when(~pl.col("_valid"))
        .then(pl.lit("resident code ") + pl.col("resident") + " fails its check character")
        .when(pl.col("_row") != pl.col("_first"))
        .then(pl.lit("duplicate resident: first listed on row ") + pl.col("_first").cast(pl.String))
        .when(pl.col("_labels").list.eval(pl.element().is_null()).list.any())
        .then(pl.lit("unknown household label in '") + pl.col("labels") + "'")
        .when(pl.col("_colour").is_null())
        .then(pl.lit("unknown health-code colour '") + pl.col("colour") + "'")
        .when(pl.col("_away").is_null())
        .then(pl.lit("away flag '") + pl.col("away") + "' is not yes/no")
    )
    return frame.with_columns(reason.otherwise(None).alias("reason")).with_columns(
        pl.when(pl.col("reason").is_null())
        .then(
            pl.col("resident").map_batches(
                lambda s: pl.Series([hasher.hex(c) for c in s], dtype=pl.String),
                return_dtype=pl.String,
            )
        )
        .alias("rhash"),
        pl.col("_labels").list.join(";").alias("_labels"),
    )


def rkey() -> pl.Expr:
    """``rhash`` (16 hex digits) as UInt64, the key reconciliation joins on."""
    return pl.col("rhash").str.to_integer(base=16, dtype=pl.UInt64).alias("rkey")


def stored(checked: pl.LazyFrame) -> pl.LazyFrame:
    """The good rows, in the register's stored schema."""
    return (
        checked.filter(pl.col("reason").is_null())
        .with_columns(
            pl.col("_labels").alias("labels"),
            pl.col("_colour").alias("colour"),
            pl.col("_away").alias("away"),
            pl.when(pl.col("phone") == "").then(None).otherwise(pl.col("phone")).alias("phone"),
            rkey(),
        )
        .select(list(SCHEMA))
    )


def risk_flags(register: pl.LazyFrame) -> pl.LazyFrame:
    """[resident, flags]: Y yellow code, R red code, I home isolation (non-empty only)."""
    flags = pl.concat_str(
        pl.when(pl.col("colour") == "yellow").then(pl.lit("Y")).otherwise(pl.lit("")),
        pl.when(pl.col("colour") == "red").then(pl.lit("R")).otherwise(pl.lit("")),
        pl.when(pl.col("labels").str.contains("home_isolation", literal=True))
        .then(pl.lit("I"))
        .otherwise(pl.lit("")),
    )
    return register.select("resident", flags.alias("flags")).filter(pl.col("flags") != "")


def _missing_columns(raw: pl.LazyFrame) -> list[str]:
    present = set(raw.collect_schema().names())
    return [c for c in REQUIRED if c not in present]


def import_register(
    path: Path, hasher: ResidentHasher, data_dir: Path, *, dry_run: bool = False
) -> tuple[RegisterReport, pl.DataFrame]:
    """Check (and unless ``dry_run``, store) a register file.

    Returns the report and the risk flags of the stored rows ([resident, flags]).
    """
    try:
        raw = read_raw(path)
    except EmptyFile:
        report = RegisterReport(
            source=str(path), dry_run=dry_run, rows_read=0, rows_stored=0, rows_refused=0,
            problems=[RowProblem(row=0, reason="the file is empty")],
        )  # fmt: skip
        return report, pl.DataFrame(schema={"resident": pl.String, "flags": pl.String})
    missing = _missing_columns(raw)
    if missing:
        n = raw.select(pl.len()).collect().item()
        report = RegisterReport(
            source=str(path), dry_run=dry_run, rows_read=n, rows_stored=0, rows_refused=n,
            problems=[RowProblem(row=0, reason=f"missing column(s): {', '.join(missing)}; "
                                 "every row refused")],
        )  # fmt: skip
        return report, pl.DataFrame(schema={"resident": pl.String, "flags": pl.String})
    checked = validate(raw, hasher).collect()
    bad = checked.filter(pl.col("reason").is_not_null())
    problems = [
        RowProblem(row=row, reason=reason, value=value[:60])
        for row, reason, value in bad.select("_row", "reason", "resident").iter_rows()
    ]
    good = stored(checked.lazy()).collect()
    # Two codes with one keyed hash would merge two people: refuse both (p < 1e-5).
    clash = good.filter(pl.col("rhash").is_duplicated())
    if clash.height:
        problems += [
            RowProblem(row=0, reason="keyed-hash collision; report to the operator", value=c)
            for c in clash["resident"]
        ]
        good = good.filter(~pl.col("rhash").is_duplicated())
    target = data_dir / "register" / REGISTER_FILE
    # A file with no good row replaces nothing: the register in use stays.
    stores = not dry_run and good.height > 0
    if stores:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".parquet.tmp")
        good.write_parquet(tmp)
        os.replace(tmp, target)
    report = RegisterReport(
        source=str(path),
        dry_run=dry_run,
        rows_read=checked.height,
        rows_stored=good.height,
        rows_refused=checked.height - good.height,
        problems=sorted(problems, key=lambda p: p.row),
        path=str(target) if stores else "",
    )
    return report, risk_flags(good.lazy()).collect()


async def push_risk(
    binder: Binder,
    round_id: str,
    flags: pl.DataFrame,
    chunk: int = 5000,
    *,
    by: str = "",
    progress: Callable[[int], object] | None = None,
) -> int:
    """Hand the register's risk flags to the binding core for ``round_id`` (journaled as
    ``by``); ``progress`` is told each chunk's size."""
    total = 0
    rows = list(flags.select("resident", "flags").iter_rows())
    for start in range(0, len(rows), chunk):
        update = RiskUpdate(
            residents=[RiskFlag(resident=c, flags=f) for c, f in rows[start : start + chunk]]
        )
        total += await binder.set_risk(round_id, update, by=by)
        if progress is not None:
            progress(len(update.residents))
    return total
