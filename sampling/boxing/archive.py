"""Boxes, their tubes and lab intake, derived from a round's archived journal.

The archiver (``sampling.archive``) calls :func:`materialize` with the round's
journal as a LazyFrame of ``sampling.journal.Entry`` columns (absent fields
null). It writes three files the lab's reconciliation reads:

* ``boxes.parquet``: one row per box with its custody (times Int64 ms, null
  until the step happened) and its tube and sample counts.
* ``box_tubes.parquet``: ``box``, ``tube`` (and ``residents``) for every tube in
  a box at the end of the journal (a tube taken out again is not listed).
* ``intake.parquet``: ``box``, ``tube``, ``status`` (received, missing, extra,
  damaged), ``residents``, plus ``where`` and ``condition``. A damaged tube is
  ``damaged`` even when it was also extra; ``where`` still says so.

Journal kinds written by ``custody.lua``, with the columns each fills besides
``box``, ``tube``, ``lab``: box_open (capacity), box_add (residents), box_remove
(reason), box_seal (tubes, samples), box_handover (from_site, courier),
box_pickup (place, courier), box_receive, intake (condition, where, residents),
missing (residents: one per manifest tube not scanned at intake close),
intake_close (received, missing, extra, damaged).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from sampling.files import replace_parquet

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.store.client import AnyRedis


async def before_trim(redis: AnyRedis, round_id: str) -> None:
    """Fold the journal into the unboxed-tubes index before the archiver trims it:
    that index is built from the journal, and a close trimmed unread would never
    show as overdue."""
    from sampling.boxing.overdue import refresh_unboxed
    from sampling.store.scripts import Runner

    await refresh_unboxed(redis, Runner(redis), round_id)


_KINDS = (
    "box_open",
    "box_add",
    "box_remove",
    "box_seal",
    "box_handover",
    "box_pickup",
    "box_receive",
    "intake",
    "missing",
    "intake_close",
)


def materialize(journal: pl.LazyFrame, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    events = boxing_events(journal)
    tubes = box_tubes(events)
    replace_parquet(tubes, out_dir / "box_tubes.parquet")
    replace_parquet(boxes(events, tubes), out_dir / "boxes.parquet")
    replace_parquet(intake(events), out_dir / "intake.parquet")


def boxing_events(journal: pl.LazyFrame) -> pl.LazyFrame:
    """The journal's boxing entries in stream order."""
    return (
        journal.filter(pl.col("kind").is_in(_KINDS))
        .with_columns(_n=pl.col("id").str.split("-").list.get(1).cast(pl.Int64))
        .sort("ts", "_n")
    )


def _of(kind: str | tuple[str, ...], col: str, *, last: bool = False) -> pl.Expr:
    kinds = (kind,) if isinstance(kind, str) else kind
    picked = pl.col(col).filter(pl.col("kind").is_in(kinds) & (pl.col(col) != ""))
    return picked.last() if last else picked.first()


def box_tubes(events: pl.LazyFrame) -> pl.LazyFrame:
    return (
        events.filter(pl.col("kind").is_in(("box_add", "box_remove")))
        .group_by("box", "tube")
        .agg(last=pl.col("kind").last(), residents=pl.col("residents").last())
        .filter(pl.col("last") == "box_add")
        .select("box", "tube", "residents")
        .sort("box", "tube")
    )


def boxes(events: pl.LazyFrame, tubes: pl.LazyFrame) -> pl.LazyFrame:
    counted = tubes.group_by("box").agg(
        _tubes=pl.len().cast(pl.Int64), _samples=pl.col("residents").sum()
    )
    return (
        events.filter(pl.col("box").is_not_null())
        .group_by("box")
        .agg(
            site=_of("box_open", "site"),
            lab=_of(("box_open", "box_seal", "box_handover"), "lab", last=True),
            opened_at=pl.col("ts").filter(pl.col("kind") == "box_open").first(),
            sealed_at=pl.col("ts").filter(pl.col("kind") == "box_seal").first(),
            sealed_by=_of("box_seal", "device"),
            handed_over_at=pl.col("ts").filter(pl.col("kind") == "box_handover").first(),
            picked_up_at=pl.col("ts").filter(pl.col("kind") == "box_pickup").first(),
            courier=_of("box_pickup", "courier"),
            received_at=pl.col("ts").filter(pl.col("kind") == "box_receive").first(),
            received_by=_of("box_receive", "device"),
            intake_closed_at=pl.col("ts").filter(pl.col("kind") == "intake_close").first(),
            _sealed_tubes=pl.col("tubes").filter(pl.col("kind") == "box_seal").first(),
            _sealed_samples=pl.col("samples").filter(pl.col("kind") == "box_seal").first(),
        )
        .join(counted, on="box", how="left")
        .with_columns(
            tubes=pl.coalesce("_sealed_tubes", "_tubes", pl.lit(0, dtype=pl.Int64)),
            samples=pl.coalesce("_sealed_samples", "_samples", pl.lit(0, dtype=pl.Int64)),
        )
        .drop("_sealed_tubes", "_sealed_samples", "_tubes", "_samples")
        .sort("box")
    )


def intake(events: pl.LazyFrame) -> pl.LazyFrame:
    scans = (
        events.filter(pl.col("kind") == "intake")
        .select("box", "tube", "condition", "where", "residents")
        .with_columns(
            status=pl.when(pl.col("condition") != "ok")
            .then(pl.lit("damaged"))
            .when(pl.col("where") != "manifest")
            .then(pl.lit("extra"))
            .otherwise(pl.lit("received"))
        )
    )
    missing = events.filter(pl.col("kind") == "missing").select(
        "box",
        "tube",
        "residents",
        condition=pl.lit(None, dtype=pl.Utf8),
        where=pl.lit("manifest"),
        status=pl.lit("missing"),
    )
    return (
        pl.concat([scans, missing], how="diagonal")
        .select("box", "tube", "status", "residents", "where", "condition")
        .sort("box", "tube")
    )
