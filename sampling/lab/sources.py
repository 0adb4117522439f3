"""Lazy loaders for the archived round and the register.

Each loader returns a ``LazyFrame`` with a fixed schema: a file that is absent
(a round not yet boxed, no intake yet) is an empty frame of that schema, and
every time column is normalised to Int64 Unix milliseconds whatever the
archiver wrote (Int64 ms, float seconds or a Datetime).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import msgspec
import polars as pl

from sampling.archive import ROUND_FILE
from sampling.lab.archive import DOORS_FILE, DOORS_SCHEMA, RESULTS_FILE, RESULTS_SCHEMA
from sampling.lab.register import REGISTER_FILE, rkey
from sampling.lab.register import SCHEMA as REGISTER_SCHEMA

if TYPE_CHECKING:
    from pathlib import Path

S, I64 = pl.String, pl.Int64
SCHEMAS: Final[dict[str, pl.Schema]] = {
    "bindings": pl.Schema({"rhash": S, "tube": S, "site": S, "device": S, "scanned_at": I64,
                           "purpose": S}),
    "tubes": pl.Schema({"tube": S, "site": S, "device": S, "capacity": I64, "purpose": S,
                        "opened_at": I64, "closed_at": I64, "count": I64}),
    "boxes": pl.Schema({"box": S, "site": S, "lab": S, "sealed_at": I64, "sealed_by": S,
                        "picked_up_at": I64, "courier": S, "received_at": I64,
                        "received_by": S, "intake_closed_at": I64, "tubes": I64,
                        "samples": I64}),
    "box_tubes": pl.Schema({"box": S, "tube": S}),
    "intake": pl.Schema({"box": S, "tube": S, "status": S, "residents": I64}),
    "sites": pl.Schema({"site": S, "street": S, "community": S, "grid": S}),
    "results": RESULTS_SCHEMA,
}  # fmt: skip
TIME_COLUMNS: Final = frozenset(
    {"scanned_at", "opened_at", "closed_at", "sealed_at", "picked_up_at", "received_at",
     "intake_closed_at", "tested_at"}
)  # fmt: skip


def _as_ms(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        return col.dt.epoch("ms").alias(name)
    if dtype.is_float():
        # Float times are Unix seconds (the binding core's clock is seconds).
        return (col * 1000).round().cast(pl.Int64).alias(name)
    if dtype.is_integer():
        # An integer below 10^11 is seconds (that is before 1973 in ms).
        return pl.when(col < 100_000_000_000).then(col * 1000).otherwise(col).cast(pl.Int64)
    return col.cast(pl.Int64, strict=False).alias(name)


def conform(frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """``frame`` with exactly ``schema``'s columns: missing ones null, times in ms."""
    have = frame.collect_schema()
    exprs: list[pl.Expr] = []
    for name, dtype in schema.items():
        if name not in have:
            exprs.append(pl.lit(None, dtype).alias(name))
        elif name in TIME_COLUMNS:
            exprs.append(_as_ms(name, have[name]).alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype, strict=False).alias(name))
    return frame.select(exprs)


def scan(path: Path, schema: pl.Schema) -> pl.LazyFrame:
    if not path.exists():
        return pl.LazyFrame(schema=schema)
    return conform(pl.scan_parquet(path), schema)


class _Created(msgspec.Struct):
    created_at: float


@dataclass(frozen=True)
class Round:
    """The archived Parquet of one round, as lazy frames."""

    round_id: str
    bindings: pl.LazyFrame
    tubes: pl.LazyFrame
    boxes: pl.LazyFrame
    box_tubes: pl.LazyFrame
    intake: pl.LazyFrame
    results: pl.LazyFrame
    sites: pl.LazyFrame
    #: Each resident's latest door outcome (``sampling.lab.doorlog``).
    door_outcomes: pl.LazyFrame = field(default_factory=lambda: pl.LazyFrame(schema=DOORS_SCHEMA))


def archive_dir(data_dir: Path, round_id: str) -> Path:
    return data_dir / "archive" / round_id


def scan_round(data_dir: Path, round_id: str) -> Round:
    base = archive_dir(data_dir, round_id)
    frames = {
        name: scan(base / f"{name}.parquet", schema)
        for name, schema in SCHEMAS.items()
        if name != "results"
    }
    return Round(
        round_id=round_id,
        results=scan(base / RESULTS_FILE, RESULTS_SCHEMA),
        door_outcomes=scan(base / DOORS_FILE, DOORS_SCHEMA),
        **frames,
    )


def register_path(data_dir: Path) -> Path:
    return data_dir / "register" / REGISTER_FILE


def scan_register(data_dir: Path) -> pl.LazyFrame:
    path = register_path(data_dir)
    if path.exists() and "rkey" not in pl.scan_parquet(path).collect_schema():
        return conform(pl.scan_parquet(path).with_columns(rkey()), REGISTER_SCHEMA)
    return scan(path, REGISTER_SCHEMA)


def round_created(data_dir: Path, round_id: str) -> float:
    """When the round was created (Unix seconds): from the archived ``round.json``,
    else (an archive from before it was written) the round's first scan, else 0."""
    base = archive_dir(data_dir, round_id)
    meta = base / ROUND_FILE
    if meta.exists():
        return float(msgspec.json.decode(meta.read_bytes(), type=_Created).created_at)
    first = scan(base / "bindings.parquet", SCHEMAS["bindings"]).select(pl.col("scanned_at").min())
    ms = first.collect().item()
    return 0.0 if ms is None else ms / 1000


def archived_rounds(data_dir: Path) -> list[str]:
    """The archived rounds in the order they were created (ties: by name)."""
    base = data_dir / "archive"
    if not base.is_dir():
        return []
    names = [p.name for p in base.iterdir() if (p / "bindings.parquet").exists()]
    return sorted(names, key=lambda r: (round_created(data_dir, r), r))
