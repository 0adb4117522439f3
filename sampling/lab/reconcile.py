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
A resident re-sampled (once or, after an invalid or lost re-sample, again) is in
the state of the latest attempt: a positive pool whose re-sample is negative is
``negative``; every attempt keeps its own numbered order (:func:`resample_orders`).
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


def _state(outcome: str, intake_status: str) -> pl.Expr:
    return (
        pl.when(pl.col(outcome).is_in(("negative", "positive", "invalid")))
        .then(pl.col(outcome))
        .when(pl.col(intake_status).is_not_null())
        .then(pl.lit("lost"))
        .otherwise(pl.lit("awaiting"))
        .cast(STATE_DTYPE)
    )


_COLS: Final = ("rhash", "tube", "site", "scanned_at")


def _judged(tries: pl.LazyFrame, results: pl.LazyFrame, intake: pl.LazyFrame) -> pl.LazyFrame:
    """``tries`` with the state of each tube: its result, else lost, else awaiting."""
    return (
        tries.join(results.select("tube", "outcome"), on="tube", how="left")
        .join(lost_tubes(intake), on="tube", how="left")
        .select(*_COLS, "attempt", _state("outcome", "intake_status").alias("state"))
    )


def _pool_tries(bindings: pl.LazyFrame) -> pl.LazyFrame:
    return pool_bindings(bindings).select(*_COLS, pl.lit(0, pl.Int64).alias("attempt"))


def _resample_tries(bindings: pl.LazyFrame) -> pl.LazyFrame:
    # Re-samples are a small share of a round: sorting them alone is cheap.
    return (
        bindings.filter(pl.col("purpose") == "resample")
        .select(*_COLS)
        .sort("rhash", "scanned_at", "tube")
        .with_columns((pl.int_range(pl.len()).over("rhash") + 1).cast(pl.Int64).alias("attempt"))
    )


def attempts(bindings: pl.LazyFrame, results: pl.LazyFrame, intake: pl.LazyFrame) -> pl.LazyFrame:
    """[rhash, tube, site, scanned_at, attempt, state]: every binding of a resident.

    Attempt 0 is the pool binding; re-samples are numbered 1, 2, ... in the order
    they were scanned (the binding core allows the next only after the last one
    came back invalid or was lost, so the order is the chain of attempts).
    """
    tries = pl.concat([_pool_tries(bindings), _resample_tries(bindings)])
    return _judged(tries, results, intake)


def person_states(
    bindings: pl.LazyFrame, results: pl.LazyFrame, intake: pl.LazyFrame
) -> pl.LazyFrame:
    """[rhash, tube, site, scanned_at, attempt, state]: one row per resident bound in a
    pool (its pool tube, site and time), in the state of the resident's latest attempt."""
    latest = (
        _judged(_resample_tries(bindings), results, intake)
        .group_by("rhash")
        .agg(
            pl.col("attempt").max().alias("latest"),
            pl.col("state").sort_by("attempt").last().alias("latest_state"),
        )
    )
    return (
        _judged(_pool_tries(bindings), results, intake)
        .join(latest, on="rhash", how="left")
        .select(
            *_COLS,
            pl.col("latest").fill_null(0).alias("attempt"),
            pl.coalesce("latest_state", "state").alias("state"),
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
    tries: pl.LazyFrame, results: pl.LazyFrame, register: pl.LazyFrame
) -> pl.LazyFrame:
    """One numbered single-tube re-sample order per failed attempt of a resident.

    A positive pool, and any attempt that came back invalid or was lost, opens the
    next order (``order`` = the failed attempt + 1). Each order is tracked to its
    closure: ``open`` (nothing bound yet), ``sampled`` (a re-sample tube is bound,
    no result), ``resulted`` (it has its own result; an invalid one opens the next
    order) or ``lost`` (intake found the tube missing or damaged; the next order is
    open). ``tries`` is :func:`attempts`. With the household's address and phone.
    """
    failed = tries.filter(
        pl.col("state").is_in(("invalid", "lost"))
        | ((pl.col("attempt") == 0) & (pl.col("state") == "positive"))
    )
    following = tries.filter(pl.col("attempt") > 0).select(
        "rhash",
        (pl.col("attempt") - 1).alias("attempt"),
        pl.col("tube").alias("resample_tube"),
        pl.col("scanned_at").alias("resampled_at"),
        pl.col("state").alias("resample_state"),
    )
    rres = results.select(
        pl.col("tube").alias("resample_tube"), pl.col("outcome").alias("resample_outcome")
    )
    reg = register.select(
        "rhash", "name", "phone", "street", "community", "grid", "building", "unit", "household"
    )
    pool_positive = ((pl.col("attempt") == 0) & (pl.col("state") == "positive")).any()
    return (
        failed.join(following, on=["rhash", "attempt"], how="left")
        .join(results.select("tube", "ct_orf1ab", "ct_n"), on="tube", how="left")
        .join(reg, on="rhash", how="left")
        .join(rres, on="resample_tube", how="left")
        .with_columns(
            (pl.col("attempt") + 1).alias("order"),
            pl.when(pool_positive.over("rhash"))
            .then(pl.lit("urgent"))
            .otherwise(pl.lit("normal"))
            .alias("priority"),
            pl.when(pl.col("resample_outcome").is_not_null())
            .then(pl.lit("resulted"))
            .when(pl.col("resample_state") == "lost")
            .then(pl.lit("lost"))
            .when(pl.col("resample_tube").is_not_null())
            .then(pl.lit("sampled"))
            .otherwise(pl.lit("open"))
            .alias("order_state"),
        )
        .select(
            "priority",
            "order",
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
        .sort(
            "priority", "grid", "building", "unit", "household", "rhash", "order",
            descending=[True, *[False] * 6],
        )
    )  # fmt: skip
