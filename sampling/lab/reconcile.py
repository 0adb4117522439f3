"""Every bound resident's state, and the re-sample orders that follow.

A resident bound in a pool (``purpose == "pool"``) ends in exactly one state:

============  =====================================================  ============
``negative``  the tube's result is negative                          done
``positive``  the pool is positive                                   re-sample
``invalid``   the pool's result is invalid                           re-sample
``lost``      no result, and intake found the tube missing/damaged   re-sample
``awaiting``  no result yet                                          wait
============  =====================================================  ============

A result decides over the intake record (a lab that tested a tube had it).
Everything here is a pure ``LazyFrame -> LazyFrame`` transform.
"""

from __future__ import annotations

from typing import Final

import polars as pl

STATES: Final = ("negative", "positive", "invalid", "lost", "awaiting")
RESAMPLE_STATES: Final = ("positive", "invalid", "lost")
LOST_STATUSES: Final = ("missing", "damaged")
STATE_DTYPE: Final = pl.Enum(STATES)


def pool_bindings(bindings: pl.LazyFrame) -> pl.LazyFrame:
    return bindings.filter(pl.col("purpose") == "pool")


def lost_tubes(intake: pl.LazyFrame) -> pl.LazyFrame:
    """[tube, intake_status]: tubes intake recorded missing or damaged."""
    return (
        intake.filter(pl.col("status").is_in(LOST_STATUSES))
        .group_by("tube")
        .agg(pl.col("status").first().alias("intake_status"))
    )


def person_states(
    bindings: pl.LazyFrame, results: pl.LazyFrame, intake: pl.LazyFrame
) -> pl.LazyFrame:
    """[rhash, tube, site, scanned_at, state]: one row per resident bound in a pool."""
    outcome = results.select("tube", "outcome")
    return (
        pool_bindings(bindings)
        .select("rhash", "tube", "site", "scanned_at")
        .join(outcome, on="tube", how="left")
        .join(lost_tubes(intake), on="tube", how="left")
        .select(
            "rhash",
            "tube",
            "site",
            "scanned_at",
            pl.when(pl.col("outcome").is_in(("negative", "positive", "invalid")))
            .then(pl.col("outcome"))
            .when(pl.col("intake_status").is_not_null())
            .then(pl.lit("lost"))
            .otherwise(pl.lit("awaiting"))
            .cast(STATE_DTYPE)
            .alias("state"),
        )
    )


def state_counts(states: pl.LazyFrame) -> pl.LazyFrame:
    """[state, residents]: every state, zero where none, in the table's order."""
    every = pl.LazyFrame({"state": pl.Series(STATES, dtype=STATE_DTYPE)})
    counts = states.group_by("state").agg(pl.len().cast(pl.Int64).alias("residents"))
    return (
        every.join(counts, on="state", how="left")
        .with_columns(pl.col("residents").fill_null(0))
        .sort("state")
    )


def resample_orders(
    states: pl.LazyFrame,
    bindings: pl.LazyFrame,
    results: pl.LazyFrame,
    register: pl.LazyFrame,
) -> pl.LazyFrame:
    """One single-tube re-sample order per resident of a positive, invalid or lost tube.

    With the household's address and phone for the team, and tracked: ``open``
    (no re-sample bound yet), ``sampled`` (a re-sample tube is bound, no result),
    ``resulted`` (the re-sample tube has its own result).
    """
    resample = (
        bindings.filter(pl.col("purpose") == "resample")
        .group_by("rhash")
        .agg(
            pl.col("tube").sort_by("scanned_at").last().alias("resample_tube"),
            pl.col("scanned_at").max().alias("resampled_at"),
        )
    )
    rres = results.select(
        pl.col("tube").alias("resample_tube"), pl.col("outcome").alias("resample_outcome")
    )
    reg = register.select(
        "rhash", "name", "phone", "street", "community", "grid", "building", "unit", "household"
    )
    return (
        states.filter(pl.col("state").is_in(RESAMPLE_STATES))
        .join(results.select("tube", "ct_orf1ab", "ct_n"), on="tube", how="left")
        .join(reg, on="rhash", how="left")
        .join(resample, on="rhash", how="left")
        .join(rres, on="resample_tube", how="left")
        .with_columns(
            pl.when(pl.col("state") == "positive")
            .then(pl.lit("urgent"))
            .otherwise(pl.lit("normal"))
            .alias("priority"),
            pl.when(pl.col("resample_outcome").is_not_null())
            .then(pl.lit("resulted"))
            .when(pl.col("resample_tube").is_not_null())
            .then(pl.lit("sampled"))
            .otherwise(pl.lit("open"))
            .alias("order_state"),
        )
        .select(
            "priority",
            "order_state",
            "state",
            "tube",
            "ct_orf1ab",
            "ct_n",
            "rhash",
            "name",
            "phone",
            "street",
            "community",
            "grid",
            "building",
            "unit",
            "household",
            "resample_tube",
            "resampled_at",
            "resample_outcome",
        )
        .sort("priority", "grid", "building", "unit", "household", descending=[True, *[False] * 4])
    )
