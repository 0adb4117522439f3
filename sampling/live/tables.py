"""The small per-round tables the archiver writes for the live figures, and their reader.

Each archive pass writes ``archive/<round>/live_coverage.parquet`` (expected and
sampled residents per street, community and grid: the register joined with the
archived bindings) and ``archive/<round>/archived.json`` (``as_of``: every change
accepted before that time is in the tables). The endpoint reads them through a
per-process cache keyed by the file's mtime, so a request reads no file unless
the archiver wrote a new one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import polars as pl

from sampling import archive
from sampling.archive import round_dir
from sampling.lab import coverage, sources
from sampling.live.models import CoverageRow

if TYPE_CHECKING:
    from pathlib import Path

COVERAGE_FILE = "live_coverage.parquet"
STAMP_FILE = archive.STAMP_FILE


def _pct(sampled: pl.Expr, expected: pl.Expr) -> pl.Expr:
    return (pl.when(expected > 0).then((100.0 * sampled / expected).round(2)).otherwise(0.0)).alias(
        "coverage"
    )


def coverage_frame(data_dir: Path, round_id: str) -> pl.LazyFrame:
    """[level, name, parent, expected, sampled, coverage] for every street, community, grid."""
    marked = coverage.marked(
        sources.scan_register(data_dir), sources.scan_round(data_dir, round_id).bindings
    )
    levels = (("street", None), ("community", "street"), ("grid", "community"))
    frames = []
    for level, parent in levels:
        by = [level] if parent is None else [parent, level]
        frames.append(
            marked.group_by(by)
            .agg(
                pl.len().cast(pl.Int64).alias("expected"),
                pl.col("sampled").sum().cast(pl.Int64).alias("sampled"),
            )
            .select(
                pl.lit(level).alias("level"),
                pl.col(level).cast(pl.Utf8).alias("name"),
                (pl.lit("") if parent is None else pl.col(parent).cast(pl.Utf8)).alias("parent"),
                "expected",
                "sampled",
            )
        )
    return (
        pl.concat(frames)
        .with_columns(_pct(pl.col("sampled"), pl.col("expected")))
        .sort("level", "parent", "name")
    )


def write(data_dir: Path, round_id: str, as_of: float) -> None:
    """Write the coverage table (when there is a register) and the as-of stamp."""
    out = round_dir(data_dir, round_id)
    out.mkdir(parents=True, exist_ok=True)
    if sources.register_path(data_dir).exists():
        target = out / COVERAGE_FILE
        tmp = target.with_suffix(".tmp")
        coverage_frame(data_dir, round_id).collect().write_parquet(tmp)
        tmp.replace(target)
    archive.write_stamp(data_dir, round_id, as_of)


class CoverageCache:
    """The coverage rows and as-of stamp of each round, reread only when a file changes."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._rows: dict[str, tuple[float, list[CoverageRow]]] = {}
        self._stamps: dict[str, tuple[float, float | None]] = {}

    def _mtime(self, path: Path) -> float:
        try:
            return os.stat(path).st_mtime_ns / 1e9
        except FileNotFoundError:
            return -1.0

    def rows(self, round_id: str) -> list[CoverageRow]:
        path = round_dir(self._data_dir, round_id) / COVERAGE_FILE
        mtime = self._mtime(path)
        hit = self._rows.get(round_id)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        rows: list[CoverageRow] = []
        if mtime >= 0:
            rows = [CoverageRow(**row) for row in pl.read_parquet(path).to_dicts()]
        self._rows[round_id] = (mtime, rows)
        return rows

    def archived_at(self, round_id: str) -> float | None:
        path = round_dir(self._data_dir, round_id) / STAMP_FILE
        mtime = self._mtime(path)
        hit = self._stamps.get(round_id)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        found = archive.as_of(self._data_dir, round_id) if mtime >= 0 else None
        self._stamps[round_id] = (mtime, found)
        return found
