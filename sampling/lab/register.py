"""Importing the population register: who lives where, and with which labels.

Community workers keep the register in spreadsheets, so it arrives as CSV, XLSX
or Parquet, with English or Chinese headers. Every row is checked (resident code
check character, required values, known labels and colours, duplicates); a dry
run reports every bad row with its row number and reason and stores nothing.
An import writes the good rows to ``<data_dir>/register/register.parquet`` with
the resident's keyed hash (``rhash``), which is what reconciliation joins on:
names and phones stay in this file and never reach Redis.

The register is one table kept by many community workers, each with their own
spreadsheet, so a file replaces only the communities it names (or the grids, or
with ``scope="all"`` everything): importing two communities' files in either
order gives the same register. Imports take the register's lock (``flock``) and
bump its version; the report says, per community, the households and residents
added, removed and changed. Rounds' risk flags follow the register
(``sampling.lab.riskfollow``).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import fastexcel
import polars as pl

from sampling import codes
from sampling.binding.models import RiskFlag, RiskUpdate
from sampling.errors import BadInput, Forbidden
from sampling.lab.models import RegisterReport, RegisterScope, RowProblem
from sampling.lab.parse import header_key
from sampling.lab.register_changes import HOUSEHOLD, per_community

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sampling.binding.service import Binder
    from sampling.privacy import ResidentHasher

REGISTER_FILE: Final = "register.parquet"
#: Beside it: the register's version (one more with each stored import), and the lock
#: imports take.
VERSION_FILE: Final = "version"
LOCK_FILE: Final = "lock"
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


def flags_expr() -> pl.Expr:
    """A row's risk flags, sorted (``I`` isolation, ``R`` red, ``Y`` yellow; "" for none)."""
    return pl.concat_str(
        pl.when(pl.col("labels").str.contains("home_isolation", literal=True))
        .then(pl.lit("I"))
        .otherwise(pl.lit("")),
        pl.when(pl.col("colour") == "red").then(pl.lit("R")).otherwise(pl.lit("")),
        pl.when(pl.col("colour") == "yellow").then(pl.lit("Y")).otherwise(pl.lit("")),
    )


def _missing_columns(raw: pl.LazyFrame) -> list[str]:
    present = set(raw.collect_schema().names())
    return [c for c in REQUIRED if c not in present]


def _nothing(source: str, dry_run: bool, scope: RegisterScope, n: int,
             reason: str) -> tuple[RegisterReport, pl.DataFrame]:  # fmt: skip
    report = RegisterReport(
        source=source, dry_run=dry_run, rows_read=n, rows_stored=0, rows_refused=n,
        problems=[RowProblem(row=0, reason=reason)], scope=scope,
    )  # fmt: skip
    return report, pl.DataFrame(schema={"resident": pl.String, "flags": pl.String})


@contextmanager
def _locked(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """The register's lock: imports (read, merge, write) one at a time, readers of the
    version and file between them. Nothing to lock when there is no register yet and
    nothing will be written."""
    if not exclusive and not directory.is_dir():
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _version(directory: Path) -> int:
    try:
        return int((directory / VERSION_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _current(directory: Path) -> pl.DataFrame:
    target = directory / REGISTER_FILE
    if not target.exists():
        return pl.DataFrame(schema=SCHEMA)
    return pl.read_parquet(target).select(list(SCHEMA)).cast(SCHEMA)


def _write_atomic(path: Path, data: bytes | pl.DataFrame) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, pl.DataFrame):
        data.write_parquet(tmp)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def flagged(data_dir: Path) -> tuple[int, list[tuple[bytes, str]]]:
    """The register's version and every resident it flags, as (keyed hash, flags):
    what a round's derived risk flags are set to (``sampling.lab.riskfollow``)."""
    directory = data_dir / "register"
    with _locked(directory, exclusive=False):
        version = _version(directory)
        target = directory / REGISTER_FILE
        if not target.exists():
            return version, []
        rows = (
            pl.scan_parquet(target)
            .select("rhash", flags_expr().alias("flags"))
            .filter(pl.col("flags") != "")
            .collect()
        )
    return version, [(bytes.fromhex(h), f) for h, f in rows.iter_rows()]


def _may_replace(
    checked: pl.DataFrame, before: pl.DataFrame, scope: RegisterScope, allowed: frozenset[str]
) -> None:
    """Refuse (``Forbidden``) a file that would add or remove a resident outside the
    communities a registrar keeps."""
    if scope == "all":
        raise Forbidden(
            "a registrar replaces its own communities only, not the whole register",
            scope=scope,
        )
    named = set(checked.filter(pl.col("community") != "")["community"].unique())
    if scope == "grid":
        grids = checked.filter(pl.col("grid") != "")["grid"].unique().to_list()
        named |= set(before.filter(pl.col("grid").is_in(grids))["community"].unique())
    others = sorted(named - allowed)
    if others:
        raise Forbidden(
            f"this file adds to or replaces communities this account does not keep: "
            f"{', '.join(others[:10])}; it keeps {', '.join(sorted(allowed)) or 'none'}",
            communities=others[:10],
        )


def _merge(
    good: pl.DataFrame, before: pl.DataFrame, scope: RegisterScope, problems: list[RowProblem]
) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """The file's rows that can be stored, the register rows they leave in place, and the
    communities or grids replaced. Refuses (into ``problems``) a resident registered in a
    community the file does not replace, and a keyed-hash collision."""
    while True:
        if scope == "all":
            replaced: list[str] = []
            outside = before.head(0)
        else:
            replaced = sorted(good[scope].unique())
            outside = before.filter(~pl.col(scope).is_in(replaced))
        elsewhere = good.join(outside.select("resident", "community", "grid"), on="resident",
                              how="inner", suffix="_reg")  # fmt: skip
        problems += [
            RowProblem(
                row=row,
                reason=f"resident already registered in community {c}, grid {g}, which this "
                f"file does not replace: that community's file must drop them first",
                value=code,
            )
            for row, code, c, g in elsewhere.select(
                "_row", "resident", "community_reg", "grid_reg"
            ).iter_rows()
        ]
        # Two codes with one keyed hash would merge two people: refuse them (p < 1e-5).
        # (A resident in the file and outside it is refused above, not a collision.)
        hashes = pl.concat([outside.select("resident", "rhash"), good.select("resident", "rhash")])
        dup = hashes.unique().filter(pl.col("rhash").is_duplicated())["rhash"].to_list()
        clash = good.filter(pl.col("rhash").is_in(dup))
        problems += [
            RowProblem(row=0, reason="keyed-hash collision; report to the operator", value=c)
            for c in clash["resident"]
        ]
        if not elsewhere.height and not clash.height:
            return good, outside, replaced
        good = good.filter(
            ~pl.col("resident").is_in(elsewhere["resident"].to_list()) & ~pl.col("rhash").is_in(dup)
        )


def import_register(
    path: Path,
    hasher: ResidentHasher,
    data_dir: Path,
    *,
    dry_run: bool = False,
    scope: RegisterScope = "community",
    communities: frozenset[str] | None = None,
    source: str | None = None,
) -> tuple[RegisterReport, pl.DataFrame]:
    """Check (and unless ``dry_run``, store) a register file.

    The file replaces, each in full, the communities (``scope="community"``) or
    grids (``"grid"``) it has a good row for, or with ``"all"`` the whole register;
    the rest of the register stays as it was. ``communities``: the only
    communities the caller may change (a registrar), ``None`` for any. ``source``
    names the file in the report (default: ``path``).

    Returns the report and the risk flags of the file's stored rows ([resident, flags]).
    """
    name = source or str(path)
    try:
        raw = read_raw(path)
    except EmptyFile:
        return _nothing(name, dry_run, scope, 0, "the file is empty")
    missing = _missing_columns(raw)
    if missing:
        n = raw.select(pl.len()).collect().item()
        return _nothing(name, dry_run, scope, n,
                        f"missing column(s): {', '.join(missing)}; every row refused")  # fmt: skip
    checked = validate(raw, hasher).collect()
    bad = checked.filter(pl.col("reason").is_not_null())
    problems = [
        RowProblem(row=row, reason=reason, value=value[:60])
        for row, reason, value in bad.select("_row", "reason", "resident").iter_rows()
    ]
    good = stored(checked.lazy()).collect()
    good = good.with_columns(checked.filter(pl.col("reason").is_null())["_row"])
    directory = data_dir / "register"
    with _locked(directory, exclusive=not dry_run):
        before = _current(directory)
        if communities is not None:
            _may_replace(checked, before, scope, communities)
        good, outside, replaced = _merge(good, before, scope, problems)
        good = good.drop("_row")
        unit = "community" if scope == "all" else scope
        if scope == "all":
            replaced_rows = before
            replaced = sorted(set(before["community"]) | set(good["community"]))
        else:
            replaced_rows = before.filter(pl.col(scope).is_in(replaced))
        named = set(checked.filter(pl.col(unit) != "")[unit])
        changes = per_community(replaced_rows, good) if good.height else []
        version = _version(directory)
        # A file with no good row replaces nothing: the register in use stays.
        stores = not dry_run and good.height > 0
        target = directory / REGISTER_FILE
        if stores:
            # One table; stable order by address, so the same files give the same
            # register whatever order they come in.
            merged = pl.concat([outside, good]).sort(list(HOUSEHOLD), maintain_order=True)
            _write_atomic(target, merged)
            version += 1
            _write_atomic(directory / VERSION_FILE, f"{version}\n".encode())
    report = RegisterReport(
        source=name,
        dry_run=dry_run,
        rows_read=checked.height,
        rows_stored=good.height,
        rows_refused=checked.height - good.height,
        problems=sorted(problems, key=lambda p: p.row),
        path=str(target) if stores else "",
        scope=scope,
        replaced=replaced if good.height else [],
        kept=sorted(named - set(replaced)) if scope != "all" else [],
        changes=changes,
        version=version,
    )
    return report, risk_flags(good.lazy()).collect()


async def push_risk(
    binder: Binder,
    round_id: str,
    flags: pl.DataFrame,
    chunk: int = 5000,
    *,
    by: str = "",
    reason: str = "pushed from a register file",
    progress: Callable[[int], object] | None = None,
) -> int:
    """Flag ``flags``' residents by hand in ``round_id`` (journaled as ``by``, with
    ``reason``); ``progress`` is told each chunk's size. Imports need not call it: rounds'
    flags follow the register by themselves (``sampling.lab.riskfollow``)."""
    total = 0
    rows = list(flags.select("resident", "flags").iter_rows())
    for start in range(0, len(rows), chunk):
        update = RiskUpdate(
            residents=[RiskFlag(resident=c, flags=f) for c, f in rows[start : start + chunk]],
            reason=reason,
        )
        total += await binder.set_risk(round_id, update, by=by)
        if progress is not None:
            progress(len(update.residents))
    return total
