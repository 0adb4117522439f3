"""Bindings and tubes derived from the archived journal.

``bindings.parquet``: one row per resident still bound when the journal ends
(scans minus undos), with the tube, site, device, time and purpose.
``tubes.parquet``: one row per opened tube, with its capacity, purpose, open and
close times (null while open or reopened by an undo) and its final count.

Every time is the operation's own: the device's time of the scan (journal field
``at``, Unix ms) where the handheld sent one the server trusted, else the
journal entry's receive time. An offline batch uploaded at noon keeps its
morning times, so hourly coverage and turnaround read the hour of the swab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from sampling.files import replace_parquet

if TYPE_CHECKING:
    from pathlib import Path

_EMPTY = {
    "k": pl.Utf8,
    "d": pl.Utf8,
    "site": pl.Utf8,
    "tube": pl.Utf8,
    "r": pl.Utf8,
    "x": pl.Utf8,
    "at": pl.Utf8,
}


def _ensure(journal: pl.LazyFrame) -> pl.LazyFrame:
    have = journal.collect_schema().names()
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in _EMPTY.items() if c not in have]
    return journal.with_columns(missing) if missing else journal


def opens(journal: pl.LazyFrame) -> pl.LazyFrame:
    parts = pl.col("x").str.split_exact(":", 1)
    return (
        journal.filter(pl.col("k") == "open")
        .select(
            "tube",
            "site",
            pl.col("d").alias("device"),
            parts.struct.field("field_0").cast(pl.Int64).alias("capacity"),
            pl.when(parts.struct.field("field_1") == "1")
            .then(pl.lit("resample"))
            .otherwise(pl.lit("pool"))
            .alias("purpose"),
            pl.col("when").alias("opened_at"),
        )
        .unique("tube", keep="first")
    )


def bindings(journal: pl.LazyFrame) -> pl.LazyFrame:
    moves = journal.filter(pl.col("k").is_in(["scan", "undo"])).select(
        "tube",
        "r",
        "when",
        "k",
        pl.when(pl.col("k") == "scan").then(1).otherwise(-1).alias("step"),
    )
    net = (
        moves.group_by("tube", "r")
        .agg(
            pl.col("step").sum().alias("net"),
            pl.col("when").filter(pl.col("k") == "scan").max().alias("scanned_at"),
        )
        .filter(pl.col("net") > 0)
    )
    return net.join(opens(journal), on="tube", how="left").select(
        pl.col("r").alias("rhash"),
        "tube",
        "site",
        "device",
        "scanned_at",
        "purpose",
    )


def tubes(journal: pl.LazyFrame, bound: pl.LazyFrame) -> pl.LazyFrame:
    # The journal is in order: a tube is closed when its last close/undo is a close.
    last = (
        journal.filter(pl.col("k").is_in(["close", "undo"]))
        .group_by("tube", maintain_order=True)
        .agg(pl.col("k").last().alias("last_k"), pl.col("when").last().alias("last_ts"))
    )
    counts = bound.group_by("tube").agg(pl.len().cast(pl.Int64).alias("count"))
    return (
        opens(journal)
        .join(last, on="tube", how="left")
        .join(counts, on="tube", how="left")
        .select(
            "tube",
            "site",
            "device",
            "capacity",
            "purpose",
            "opened_at",
            pl.when(pl.col("last_k") == "close")
            .then(pl.col("last_ts"))
            .otherwise(None)
            .alias("closed_at"),
            pl.col("count").fill_null(0),
        )
    )


def materialize(journal: pl.LazyFrame, out_dir: Path) -> None:
    seq_in_ms = pl.col("id").str.split("-").list.get(1).cast(pl.Int64)
    journal = (
        _ensure(journal)
        .with_columns(
            seq_in_ms.alias("_sq"),
            pl.coalesce(pl.col("at").cast(pl.Int64), pl.col("ts")).alias("when"),
        )
        .sort("ts", "_sq")
    )
    bound = bindings(journal)
    frames = pl.collect_all([bound, tubes(journal, bound)])
    replace_parquet(frames[0], out_dir / "bindings.parquet")
    replace_parquet(frames[1], out_dir / "tubes.parquet")
