"""From the round's archived journal to ``results.parquet``.

The archiver hands over the journal as a LazyFrame (``id``, ``ts`` Int64 ms, ``k``,
``d``, ``site``, ``seq``, ``op``, ``tube``, ``r``, ``x`` and any extra fields,
all text except ``ts``). Results are the entries ``record.lua`` wrote with
``k == 'result'``; a tube's last such entry wins (a review may replace a result).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import polars as pl

if TYPE_CHECKING:
    from pathlib import Path

RESULTS_FILE: Final = "results.parquet"
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
        .filter(pl.col("k") == "result")
        .with_columns(pl.col("ts").cast(pl.Int64, strict=False) if "ts" in present else pl.lit(0))
        .sort("ts", "id", maintain_order=True)
        .unique("tube", keep="last", maintain_order=True)
        .select(
            pl.col("tube").cast(pl.String),
            pl.col("outcome").cast(pl.String),
            pl.col("ct_orf1ab").cast(pl.String).replace("", None).cast(pl.Float64),
            pl.col("ct_n").cast(pl.String).replace("", None).cast(pl.Float64),
            pl.col("lab").cast(pl.String),
            pl.col("tested_at").cast(pl.String).replace("", None).cast(pl.Int64),
        )
    )


def materialize(journal: pl.LazyFrame, out_dir: Path) -> None:
    """Write ``out_dir/results.parquet`` from the round's journal."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results(journal).sink_parquet(out_dir / RESULTS_FILE)
