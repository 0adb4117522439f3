"""Coverage: who in the register was sampled, per street, community and grid.

The denominator is the register without vacant households and without residents
away from the district; the numerator is those of them bound in a pool this
round. Sampled residents who are not in that denominator (visitors, people
marked away who came back) are not counted, so coverage never exceeds 100%.

The grid teams' door outcomes (``sampling.lab.doorlog``) count too: a household
found moved away leaves the denominator (counted in ``moved``), and the
residents not sampled are counted by what was found at their door
(``not_home``, ``refused``, ``medical``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import polars as pl

from sampling.lab.reconcile import pool_bindings
from sampling.lab.register import rkey

if TYPE_CHECKING:
    from collections.abc import Sequence

LEVELS: Final = ("street", "community", "grid")
_HOUR_MS: Final = 3_600_000


def vacant() -> pl.Expr:
    return pl.col("labels").str.contains("vacant", literal=True)


def eligible(register: pl.LazyFrame) -> pl.LazyFrame:
    """The residents a round should reach: not vacant, not away."""
    return register.filter(~vacant() & ~pl.col("away").fill_null(False))


DOOR_COUNTS: Final = ("not_home", "refused", "medical")


def marked(
    register: pl.LazyFrame, bindings: pl.LazyFrame, door_outcomes: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """The eligible register with ``sampled`` (bound in a pool this round) and
    ``door_outcome`` (the latest outcome a grid team recorded, or null)."""
    done = pool_bindings(bindings).select(rkey(), pl.lit(True).alias("sampled"))
    frame = (
        eligible(register)
        .join(done, on="rkey", how="left")
        .with_columns(pl.col("sampled").fill_null(False))
    )
    if door_outcomes is None:
        return frame.with_columns(pl.lit(None, pl.String).alias("door_outcome"))
    door = door_outcomes.select("rhash", pl.col("outcome").alias("door_outcome"))
    return frame.join(door, on="rhash", how="left")


def moved() -> pl.Expr:
    return pl.col("door_outcome").fill_null("") == "moved"


def coverage(marked_register: pl.LazyFrame, by: Sequence[str]) -> pl.LazyFrame:
    """[*by, residents, sampled, missed, coverage_pct, moved, not_home, refused,
    medical] from :func:`marked`; a resident sampled is sampled whatever the door said."""
    keys = list(by)
    here = ~moved() | pl.col("sampled")
    missed_with = [
        ((pl.col("door_outcome") == o) & ~pl.col("sampled")).sum().cast(pl.Int64).alias(o)
        for o in DOOR_COUNTS
    ]
    return (
        marked_register.group_by(keys)
        .agg(
            here.sum().cast(pl.Int64).alias("residents"),
            pl.col("sampled").sum().cast(pl.Int64).alias("sampled"),
            (~here).sum().cast(pl.Int64).alias("moved"),
            *missed_with,
        )
        .with_columns(
            (pl.col("residents") - pl.col("sampled")).alias("missed"),
            (100.0 * pl.col("sampled") / pl.col("residents")).round(2).alias("coverage_pct"),
        )
        .select(*keys, "residents", "sampled", "missed", "coverage_pct", "moved", *DOOR_COUNTS)
        .sort(keys)
    )


def hourly(register: pl.LazyFrame, bindings: pl.LazyFrame, by: Sequence[str] = ()) -> pl.LazyFrame:
    """Coverage through the round: [*by, hour, sampled, cumulative, coverage_pct]."""
    keys = list(by)
    base = eligible(register).select("rhash", *keys)
    totals = base.group_by(keys).agg(pl.len().alias("_residents")) if keys else None
    hours = (
        pool_bindings(bindings)
        .select("rhash", "scanned_at")
        .join(base, on="rhash", how="inner")
        .with_columns(
            ((pl.col("scanned_at") // _HOUR_MS) * _HOUR_MS)
            .cast(pl.Datetime("ms"))
            .dt.replace_time_zone("UTC")
            .alias("hour")
        )
        .group_by([*keys, "hour"])
        .agg(pl.len().cast(pl.Int64).alias("sampled"))
        .sort([*keys, "hour"])
        .with_columns(
            (pl.col("sampled").cum_sum().over(keys) if keys else pl.col("sampled").cum_sum()).alias(
                "cumulative"
            )
        )
    )
    if totals is None:
        hours = hours.join(base.select(pl.len().alias("_residents")), how="cross")
    else:
        hours = hours.join(totals, on=keys, how="left")
    return hours.with_columns(
        (100.0 * pl.col("cumulative") / pl.col("_residents")).round(2).alias("coverage_pct")
    ).drop("_residents")


def missed_in_a_row(
    register: pl.LazyFrame, rounds: Sequence[tuple[str, pl.LazyFrame]], at_least: int = 2
) -> pl.LazyFrame:
    """Residents missed in ``at_least`` or more rounds in a row, rounds given in order.

    [rhash, name, phone, street, community, grid, building, unit, household,
    longest_run, current_run, missed_rounds]; ``current_run`` counts back from the
    last round.
    """
    frame = eligible(register).select(
        "rkey",
        "rhash",
        "name",
        "phone",
        "street",
        "community",
        "grid",
        "building",
        "unit",
        "household",
    )
    flags: list[str] = []
    for n, (_, bindings) in enumerate(rounds):
        col = f"_m{n}"
        done = pool_bindings(bindings).select(rkey(), pl.lit(False).alias(col)).unique("rkey")
        frame = frame.join(done, on="rkey", how="left").with_columns(pl.col(col).fill_null(True))
        flags.append(col)
    run: pl.Expr = pl.lit(0)
    longest: pl.Expr = pl.lit(0)
    for col in flags:
        run = pl.when(pl.col(col)).then(run + 1).otherwise(0)
        longest = pl.max_horizontal(longest, run)
    names = [rid for rid, _ in rounds]
    pairs = zip(flags, names, strict=True)
    missed = pl.concat_list(
        [pl.when(pl.col(c)).then(pl.lit(rid)).otherwise(None) for c, rid in pairs]
    ).list.drop_nulls()
    return (
        frame.with_columns(
            longest.cast(pl.Int64).alias("longest_run"),
            run.cast(pl.Int64).alias("current_run"),
            missed.list.join(",").alias("missed_rounds"),
        )
        .filter(pl.col("longest_run") >= at_least)
        .drop(*flags, "rkey")
        .sort(
            "current_run",
            "longest_run",
            "grid",
            "building",
            "unit",
            "household",
            descending=[True, True, False, False, False, False],
        )
    )
