"""Boxes, their tubes and lab intake, derived from a round's archived journal.

The archiver (``sampling.archive``) calls :func:`materialize` with the round's
journal as a LazyFrame (``id``, ``ts`` ms, ``k``, ``d``, ``site``, ``seq``,
``op``, ``tube``, ``r``, ``x`` and boxing's own ``box``, ``lab``, ``courier``;
absent fields null). It writes three files the lab's reconciliation reads:

* ``boxes.parquet``: one row per box with its custody (times Int64 ms, null
  until the step happened) and its tube and sample counts.
* ``box_tubes.parquet``: ``box``, ``tube`` (and ``residents``) for every tube in
  a box at the end of the journal (a tube taken out again is not listed).
* ``intake.parquet``: ``box``, ``tube``, ``status`` (received, missing, extra,
  damaged), ``residents``, plus ``where`` and ``condition``. A damaged tube is
  ``damaged`` even when it was also extra; ``where`` still says so.

Journal kinds written by ``custody.lua``: box_open, box_add (x = residents),
box_remove (x = reason), box_seal (x = "tubes:samples"), box_handover,
box_pickup, box_receive, intake (x = "condition:where:residents"), missing
(x = residents, one per manifest tube not scanned at intake close), intake_close.
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


_OWN = ("box", "lab", "courier")
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
    """The journal's boxing entries in stream order, with boxing's own columns present."""
    present = journal.collect_schema().names()
    missing = [pl.lit(None, dtype=pl.Utf8).alias(c) for c in _OWN if c not in present]
    return (
        journal.with_columns(missing)
        .filter(pl.col("k").is_in(_KINDS))
        .with_columns(_n=pl.col("id").str.split("-").list.get(1).cast(pl.Int64))
        .sort("ts", "_n")
    )


def _of(kind: str | tuple[str, ...], col: str, *, last: bool = False) -> pl.Expr:
    kinds = (kind,) if isinstance(kind, str) else kind
    picked = pl.col(col).filter(pl.col("k").is_in(kinds) & (pl.col(col) != ""))
    return picked.last() if last else picked.first()


def box_tubes(events: pl.LazyFrame) -> pl.LazyFrame:
    return (
        events.filter(pl.col("k").is_in(("box_add", "box_remove")))
        .group_by("box", "tube")
        .agg(last=pl.col("k").last(), residents=pl.col("x").last())
        .filter(pl.col("last") == "box_add")
        .select("box", "tube", pl.col("residents").cast(pl.Int64))
        .sort("box", "tube")
    )


def boxes(events: pl.LazyFrame, tubes: pl.LazyFrame) -> pl.LazyFrame:
    counted = tubes.group_by("box").agg(
        _tubes=pl.len().cast(pl.Int64), _samples=pl.col("residents").sum()
    )
    sealed = _of("box_seal", "x").str.split(":")
    return (
        events.filter(pl.col("box").is_not_null())
        .group_by("box")
        .agg(
            site=_of("box_open", "site"),
            lab=_of(("box_open", "box_seal", "box_handover"), "lab", last=True),
            opened_at=pl.col("ts").filter(pl.col("k") == "box_open").first(),
            sealed_at=pl.col("ts").filter(pl.col("k") == "box_seal").first(),
            sealed_by=_of("box_seal", "d"),
            handed_over_at=pl.col("ts").filter(pl.col("k") == "box_handover").first(),
            picked_up_at=pl.col("ts").filter(pl.col("k") == "box_pickup").first(),
            courier=_of("box_pickup", "courier"),
            received_at=pl.col("ts").filter(pl.col("k") == "box_receive").first(),
            received_by=_of("box_receive", "d"),
            intake_closed_at=pl.col("ts").filter(pl.col("k") == "intake_close").first(),
            _sealed_tubes=sealed.list.get(0, null_on_oob=True).cast(pl.Int64),
            _sealed_samples=sealed.list.get(1, null_on_oob=True).cast(pl.Int64),
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
        events.filter(pl.col("k") == "intake")
        .with_columns(_x=pl.col("x").str.split(":"))
        .select(
            "box",
            "tube",
            condition=pl.col("_x").list.get(0),
            where=pl.col("_x").list.get(1),
            residents=pl.col("_x").list.get(2).cast(pl.Int64),
        )
        .with_columns(
            status=pl.when(pl.col("condition") != "ok")
            .then(pl.lit("damaged"))
            .when(pl.col("where") != "manifest")
            .then(pl.lit("extra"))
            .otherwise(pl.lit("received"))
        )
    )
    missing = events.filter(pl.col("k") == "missing").select(
        "box",
        "tube",
        condition=pl.lit(None, dtype=pl.Utf8),
        where=pl.lit("manifest"),
        residents=pl.col("x").cast(pl.Int64),
        status=pl.lit("missing"),
    )
    return (
        pl.concat([scans, missing], how="diagonal")
        .select("box", "tube", "status", "residents", "where", "condition")
        .sort("box", "tube")
    )
