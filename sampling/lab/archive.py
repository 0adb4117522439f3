"""From the round's archived journal to ``results.parquet``.

The archiver hands over the journal as a LazyFrame of ``sampling.journal.Entry``
columns. Results are the entries ``record.lua`` wrote with ``kind == 'result'``
and the supervisors' decisions ``resolve.lua`` wrote with
``kind == 'result_resolved'``; a tube's last such entry wins, and a decision to
re-test (no outcome) leaves the tube without a result.

``door_outcomes.parquet``: each resident's latest door outcome (``doorlog.lua``,
``kind == 'door'``) as [rhash, outcome, at, device, tube, grid].
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
    return (
        journal.filter(pl.col("kind").is_in(("result", "result_resolved")))
        .sort("ts", "id", maintain_order=True)
        .unique("tube", keep="last", maintain_order=True)
        .filter(pl.col("outcome").fill_null("") != "")
        .select(list(RESULTS_SCHEMA))
    )


def door_outcomes(journal: pl.LazyFrame) -> pl.LazyFrame:
    """Each resident's latest door outcome, from the journal's ``door`` entries."""
    return (
        journal.filter(pl.col("kind") == "door")
        .sort("ts", "id", maintain_order=True)
        .unique("rhash", keep="last", maintain_order=True)
        .select(
            "rhash",
            "outcome",
            pl.col("ts").alias("at"),
            "device",
            pl.col("tube").replace("", None),
            "grid",
        )
    )


def materialize(journal: pl.LazyFrame, out_dir: Path) -> None:
    """Write ``results.parquet`` and ``door_outcomes.parquet`` from the round's journal."""
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_parquet(results(journal), out_dir / RESULTS_FILE)
    replace_parquet(door_outcomes(journal).collect(), out_dir / DOORS_FILE)
