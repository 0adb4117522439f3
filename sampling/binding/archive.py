"""Bindings and tubes derived from the archived journal.

``bindings.parquet``: one row per resident still bound when the journal ends
(scans minus undos), with the tube, site, device, time and purpose.
``tubes.parquet``: one row per opened tube, with its capacity, purpose, open and
close times (null while open or reopened by an undo) and its final count.

Every time is the operation's own: the device's time of the scan (journal column
``device_at``, Unix ms) where the handheld sent one the server trusted, else the
journal entry's receive time. An offline batch uploaded at noon keeps its
morning times, so hourly coverage and turnaround read the hour of the swab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from sampling.files import replace_parquet

if TYPE_CHECKING:
    from pathlib import Path


def opens(journal: pl.LazyFrame) -> pl.LazyFrame:
    return (
        journal.filter(pl.col("kind") == "open")
        .select(
            "tube",
            "site",
            "device",
            "capacity",
            pl.col("purpose").fill_null("pool"),
            pl.col("when").alias("opened_at"),
        )
        .unique("tube", keep="first")
    )


def bindings(journal: pl.LazyFrame) -> pl.LazyFrame:
    moves = journal.filter(pl.col("kind").is_in(["scan", "undo"])).select(
        "tube",
        "rhash",
        "when",
        "kind",
        pl.when(pl.col("kind") == "scan").then(1).otherwise(-1).alias("step"),
    )
    net = (
        moves.group_by("tube", "rhash")
        .agg(
            pl.col("step").sum().alias("net"),
            pl.col("when").filter(pl.col("kind") == "scan").max().alias("scanned_at"),
        )
        .filter(pl.col("net") > 0)
    )
    return net.join(opens(journal), on="tube", how="left").select(
        "rhash",
        "tube",
        "site",
        "device",
        "scanned_at",
        "purpose",
    )


def tubes(journal: pl.LazyFrame, bound: pl.LazyFrame) -> pl.LazyFrame:
    # The journal is in order: a tube is closed when its last close/undo is a close.
    last = (
        journal.filter(pl.col("kind").is_in(["close", "undo"]))
        .group_by("tube", maintain_order=True)
        .agg(pl.col("kind").last().alias("last_k"), pl.col("when").last().alias("last_ts"))
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
    """Write ``bindings.parquet`` and ``tubes.parquet`` from the round's decoded journal
    (``sampling.journal``)."""
    seq_in_ms = pl.col("id").str.split("-").list.get(1).cast(pl.Int64)
    journal = journal.with_columns(
        seq_in_ms.alias("_sq"),
        pl.coalesce("device_at", "ts").alias("when"),
    ).sort("ts", "_sq")
    bound = bindings(journal)
    frames = pl.collect_all([bound, tubes(journal, bound)])
    replace_parquet(frames[0], out_dir / "bindings.parquet")
    replace_parquet(frames[1], out_dir / "tubes.parquet")
