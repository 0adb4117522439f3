"""What a register import changes, per community: households and residents added,
removed and changed.

``before`` is the part of the register the file replaces (its communities or
grids), ``after`` the file's good rows. A resident is the same person by code; a
household by its address (street, community, grid, building, unit, household).
A household is changed when it is in both and one of its residents was added,
removed or changed; a resident who moves counts under the community they move to.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from sampling.lab.models import CommunityChange

HOUSEHOLD: Final = ("street", "community", "grid", "building", "unit", "household")
#: What a resident's row is compared on (``rhash`` and ``rkey`` follow the code).
COMPARED: Final = ("name", "phone", *HOUSEHOLD, "labels", "colour", "away")
_SEP: Final = "\x1f"


def _household() -> pl.Expr:
    return pl.concat_str([pl.col(c).fill_null("") for c in HOUSEHOLD], separator=_SEP)


def _counts(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.group_by("community").agg(pl.len().cast(pl.Int64).alias(name))


def per_community(before: pl.DataFrame, after: pl.DataFrame) -> list[CommunityChange]:
    """The changes ``after`` makes to ``before``, one entry per community touched."""
    old = before.select("resident", *COMPARED, _household().alias("hh"))
    new = after.select("resident", *COMPARED, _household().alias("hh"))
    both = old.join(new, on="resident", how="full", suffix="_new", coalesce=True)
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_new")) for c in COMPARED])
    both = both.with_columns(
        pl.when(pl.col("hh").is_null())
        .then(pl.lit("added"))
        .when(pl.col("hh_new").is_null())
        .then(pl.lit("removed"))
        .when(differs)
        .then(pl.lit("changed"))
        .otherwise(pl.lit("same"))
        .alias("status"),
        pl.coalesce("community_new", "community").alias("community"),
    )
    moved = both.filter(pl.col("status") != "same")
    touched = pl.concat([moved.select("hh"), moved.select(pl.col("hh_new").alias("hh"))])
    old_hh = old.select("community", "hh").unique()
    new_hh = new.select("community", "hh").unique()
    parts = [
        _counts(both.filter(pl.col("status") == s), f"residents_{s}")
        for s in ("added", "removed", "changed")
    ] + [
        _counts(new_hh.join(old_hh, on="hh", how="anti"), "households_added"),
        _counts(old_hh.join(new_hh, on="hh", how="anti"), "households_removed"),
        _counts(
            new_hh.join(old_hh, on="hh", how="semi").join(touched, on="hh", how="semi"),
            "households_changed",
        ),
        _counts(old, "residents_before"),
        _counts(new, "residents_after"),
    ]
    communities = pl.concat([p.select("community") for p in parts]).unique()
    table = communities
    for part in parts:
        table = table.join(part, on="community", how="left")
    table = table.fill_null(0).sort("community")
    return [CommunityChange(**row) for row in table.iter_rows(named=True)]
