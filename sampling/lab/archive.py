"""From the round's archived journal to ``results.parquet``.

The archiver hands over the journal as a LazyFrame (``id``, ``ts`` Int64 ms, ``k``,
``d``, ``site``, ``seq``, ``op``, ``tube``, ``r``, ``x`` and any extra fields,
all text except ``ts``). Results are the entries ``record.lua`` wrote with
``k == 'result'`` and the supervisors' decisions ``resolve.lua`` wrote with
``k == 'result_resolved'``; a tube's last such entry wins, and a decision to
re-test (no outcome) leaves the tube without a result.

``door_outcomes.parquet``: each resident's latest door outcome (``doorlog.lua``,
``k == 'door'``) as [rhash, outcome, at, device, tube, grid].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import polars as pl

from sampling.files import replace_parquet

if TYPE_CHECKING:
    from pathlib import Path

RESULTS_FILE: Final = "results.parquet"
DOORS_FILE: Final = "door_outcomes.parquet"
DOORS_SCHEMA: Final = pl.Schema(
    {
        "rhash": pl.String,
        "outcome": pl.String,
        "at": pl.Int64,
        "device": pl.String,
        "tube": pl.String,
        "grid": pl.String,
    }
)
RESULTS_SCHEMA: Final = pl.Schema(
    {
        "tube": pl.String,
        "outcome": pl.String,
        "ct_orf1ab": pl.Float64,
        "ct_n": pl.Float64,
        "lab": pl.String,
        "tested_at": pl.Int64,
    }
)


def results(journal: pl.LazyFrame) -> pl.LazyFrame:
    """The journal's result entries as [tube, outcome, ct_orf1ab, ct_n, lab, tested_at]."""
    present = set(journal.collect_schema().names())
    missing = [pl.lit(None, pl.String).alias(c) for c in RESULTS_SCHEMA if c not in present]
    if "id" not in present:
        missing.append(pl.lit(None, pl.String).alias("id"))
    if "k" not in present:
        missing.append(pl.lit(None, pl.String).alias("k"))
    return (
        journal.with_columns(missing)
        .filter(pl.col("k").is_in(("result", "result_resolved")))
        .with_columns(pl.col("ts").cast(pl.Int64, strict=False) if "ts" in present else pl.lit(0))
        .sort("ts", "id", maintain_order=True)
        .unique("tube", keep="last", maintain_order=True)
        .filter(pl.col("outcome").cast(pl.String).fill_null("") != "")
        .select(
            pl.col("tube").cast(pl.String),
            pl.col("outcome").cast(pl.String),
            pl.col("ct_orf1ab").cast(pl.String).replace("", None).cast(pl.Float64),
            pl.col("ct_n").cast(pl.String).replace("", None).cast(pl.Float64),
            pl.col("lab").cast(pl.String),
            pl.col("tested_at").cast(pl.String).replace("", None).cast(pl.Int64),
        )
    )


def door_outcomes(journal: pl.LazyFrame) -> pl.LazyFrame:
    """Each resident's latest door outcome, from the journal's ``door`` entries."""
    present = set(journal.collect_schema().names())
    if not {"k", "r", "x"} <= present:
        return pl.LazyFrame(schema=DOORS_SCHEMA)
    extra = [pl.lit(None, pl.String).alias(c) for c in ("grid", "tube", "d") if c not in present]
    return (
        journal.with_columns(extra)
        .filter(pl.col("k") == "door")
        .sort("ts", "id", maintain_order=True)
        .unique("r", keep="last", maintain_order=True)
        .select(
            pl.col("r").cast(pl.String).alias("rhash"),
            pl.col("x").cast(pl.String).alias("outcome"),
            pl.col("ts").cast(pl.Int64).alias("at"),
            pl.col("d").cast(pl.String).alias("device"),
            pl.col("tube").cast(pl.String).replace("", None),
            pl.col("grid").cast(pl.String),
        )
    )


def materialize(journal: pl.LazyFrame, out_dir: Path) -> None:
    """Write ``results.parquet`` and ``door_outcomes.parquet`` from the round's journal."""
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_parquet(results(journal), out_dir / RESULTS_FILE)
    replace_parquet(door_outcomes(journal).collect(), out_dir / DOORS_FILE)
