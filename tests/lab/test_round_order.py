"""Rounds in the order they were created, not by folder name (r10 after r9, not before r2)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import polars as pl

from sampling import archive
from sampling.lab import report, sources
from sampling.lab.register import SCHEMA
from sampling.store.client import from_settings
from tests.lab.test_reconcile_golden import BINDINGS, REGISTER

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.settings import Settings
    from tests.conftest import Api


def _round(data: Path, rid: str, bindings: pl.DataFrame, created: float | None) -> None:
    base = data / "archive" / rid
    base.mkdir(parents=True)
    bindings.write_parquet(base / "bindings.parquet")
    if created is not None:
        (base / "round.json").write_text(json.dumps({"id": rid, "created_at": created}))


def test_rounds_ordered_by_creation_time(tmp_path: Path) -> None:
    (tmp_path / "register").mkdir()
    REGISTER.select(list(SCHEMA)).write_parquet(tmp_path / "register" / "register.parquet")
    everyone = BINDINGS
    without_1 = BINDINGS.filter(pl.col("rhash") != f"{1:016x}")
    # r2 first, then r9, then r10: resident 1 was missed in r9 and r10, sampled in r2.
    _round(tmp_path, "r10", without_1, created=3_000.0)
    _round(tmp_path, "r2", everyone, created=1_000.0)
    _round(tmp_path, "r9", without_1, created=2_000.0)
    assert sources.archived_rounds(tmp_path) == ["r2", "r9", "r10"]
    got = report.collect(tmp_path, "r10", ["missed_in_a_row"])["missed_in_a_row"]
    one = got.filter(pl.col("name") == "居民1")
    assert one.select("longest_run", "current_run").rows() == [(2, 2)]
    assert one["missed_rounds"].to_list() == ["r9,r10"]
    # as of r9 the history stops there: r10 is later, whatever its name
    got = report.collect(tmp_path, "r9", ["missed_in_a_row"])["missed_in_a_row"]
    assert got.filter(pl.col("name") == "居民1").height == 0  # missed once only


def test_archive_without_round_file_falls_back_to_its_first_scan(tmp_path: Path) -> None:
    late = BINDINGS.with_columns(pl.col("scanned_at") + 86_400_000)
    _round(tmp_path, "r10", BINDINGS, created=None)
    _round(tmp_path, "r2", late, created=None)
    assert sources.archived_rounds(tmp_path) == ["r10", "r2"]


def test_archiver_writes_the_round_record(api: Api, settings: Settings) -> None:
    api.round("r10")
    api.round("r2")

    async def drain() -> None:
        client = from_settings(settings)
        try:
            for rid in ("r10", "r2"):
                await archive.drain(client, rid, settings.data_dir)
        finally:
            await client.aclose()

    asyncio.run(drain())
    record = json.loads((settings.data_dir / "archive" / "r2" / "round.json").read_text())
    assert record["id"] == "r2" and record["state"] == "open"
    first = sources.round_created(settings.data_dir, "r10")
    assert 0 < first <= sources.round_created(settings.data_dir, "r2")
