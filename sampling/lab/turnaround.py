"""Turnaround: how long each tube took from closed to sealed, picked up, received, resulted.

Minutes per stage, per tube; then medians and 90th percentiles per lab and per
street, and the slowest boxes by name. A stage not reached yet is null.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from sampling.lab.register import rkey

STAGES: Final = ("sealed", "picked_up", "received", "resulted")
_MIN: Final = 60_000.0


def tube_streets(bindings: pl.LazyFrame, register: pl.LazyFrame) -> pl.LazyFrame:
    """[tube, street]: the street most of a tube's residents live in."""
    return (
        bindings.select("tube", rkey())
        .join(register.select("rkey", "street"), on="rkey", how="inner")
        .group_by("tube")
        .agg(pl.col("street").mode().first())
    )


def tube_times(
    tubes: pl.LazyFrame,
    box_tubes: pl.LazyFrame,
    boxes: pl.LazyFrame,
    results: pl.LazyFrame,
    streets: pl.LazyFrame,
) -> pl.LazyFrame:
    """[tube, box, lab, street, closed_at, ..., sealed_min, picked_up_min, received_min,
    resulted_min] - minutes from the tube's closing to each stage."""
    frame = (
        tubes.select("tube", "closed_at")
        .join(box_tubes.unique("tube", keep="last"), on="tube", how="left")
        .join(
            boxes.select(
                "box", pl.col("lab").alias("box_lab"), "sealed_at", "picked_up_at", "received_at"
            ),
            on="box",
            how="left",
        )
        .join(
            results.select("tube", "lab", pl.col("tested_at").alias("resulted_at")),
            on="tube",
            how="left",
        )
        .join(streets, on="tube", how="left")
        .with_columns(pl.coalesce("lab", "box_lab").alias("lab"))
    )
    return frame.select(
        "tube", "box", "lab", "street", "closed_at", "sealed_at", "picked_up_at", "received_at",
        "resulted_at",
        *[((pl.col(f"{s}_at") - pl.col("closed_at")) / _MIN).round(1).alias(f"{s}_min")
          for s in STAGES],
    )  # fmt: skip


def by(times: pl.LazyFrame, key: str) -> pl.LazyFrame:
    """[key, tubes, <stage>_median_min, <stage>_p90_min ...] per lab or per street."""
    aggs: list[pl.Expr] = [pl.len().cast(pl.Int64).alias("tubes")]
    for s in STAGES:
        col = pl.col(f"{s}_min")
        aggs += [
            col.median().round(1).alias(f"{s}_median_min"),
            col.quantile(0.9).round(1).alias(f"{s}_p90_min"),
        ]
    return times.filter(pl.col(key).is_not_null()).group_by(key).agg(aggs).sort(key)


def slowest_boxes(times: pl.LazyFrame, n: int = 10) -> pl.LazyFrame:
    """The ``n`` boxes whose tubes took longest from first closed to last resulted
    (or to now, for a box still without every result: those rank by what is known)."""
    return (
        times.filter(pl.col("box").is_not_null())
        .group_by("box")
        .agg(
            pl.col("lab").drop_nulls().first(),
            pl.len().cast(pl.Int64).alias("tubes"),
            pl.col("resulted_at").null_count().cast(pl.Int64).alias("without_result"),
            pl.col("closed_at").min().alias("first_closed_at"),
            pl.col("sealed_at").max(),
            pl.col("picked_up_at").max(),
            pl.col("received_at").max(),
            pl.col("resulted_at").max().alias("last_resulted_at"),
        )
        .with_columns(
            (
                (
                    pl.coalesce("last_resulted_at", "received_at", "picked_up_at", "sealed_at")
                    - pl.col("first_closed_at")
                )
                / _MIN
            )
            .round(1)
            .alias("total_min")
        )
        .sort("total_min", descending=True, nulls_last=True)
        .head(n)
    )
