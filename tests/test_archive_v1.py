"""Archives written before the journal's Parquet columns had names still read as they did.

``tests/fixtures/archive_v1`` is a round archived by the code of that time (parts
with the stream's ``k``, ``d``, ``r``, ``x`` columns), with the tables and audit
that code derived from it. The round is read three ways here, each giving those
same tables and that same audit: the old parts as they are, a fresh archive of
the same entries (parts with named columns), and a round archived half before the
change and half after.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis
import redis.asyncio as aredis
from polars.testing import assert_frame_equal

from sampling import archive, audit, journal
from sampling.auth import keys as auth_keys
from sampling.binding import keys
from sampling.store.embedded import EmbeddedServer

FIXTURE = Path(__file__).parent / "fixtures" / "archive_v1"
OLD_PARTS = sorted((FIXTURE / "archive" / "r1" / "journal").glob("part-*.parquet"))
TABLES = ("bindings", "tubes", "boxes", "box_tubes", "intake", "results", "door_outcomes")


def _restore(r: redis.Redis) -> None:
    """The round and its devices as they were, so the audit finds the round and roles."""
    state = json.loads((FIXTURE / "redis.json").read_text())
    for key, name in ((keys.meta("r1"), "meta"), (keys.ROUNDS, "rounds")):
        r.hset(key, mapping={k: bytes.fromhex(v) for k, v in state[name].items()})
    devices = {k: bytes.fromhex(v) for k, v in state["devices"].items()}
    r.hset(auth_keys.DEVICES, mapping=devices)  # type: ignore[arg-type]


def _replay(r: redis.Redis, parts: list[Path]) -> None:
    """Put the parts' entries back in the live stream, under their own ids, as written."""
    for part in parts:
        for row in pl.read_parquet(part).iter_rows(named=True):
            fields = {
                k: (bytes.fromhex(v) if k == "r" else v)
                for k, v in row.items()
                if k not in ("id", "ts") and v is not None
            }
            r.xadd(keys.journal("r1"), fields, id=row["id"])


def _old(data_dir: Path, parts: list[Path]) -> None:
    target = archive.round_dir(data_dir, "r1") / "journal"
    target.mkdir(parents=True)
    for part in parts:
        shutil.copy(part, target / part.name)


def _drain(url: str, data_dir: Path) -> archive.ArchiveReport:
    async def go() -> archive.ArchiveReport:
        client = aredis.Redis.from_url(url)
        try:
            return await archive.drain(client, "r1", data_dir)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _audits(url: str, data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    asks = json.loads((FIXTURE / "audit.json").read_text())

    async def go() -> dict[str, list[dict[str, Any]]]:
        client = aredis.Redis.from_url(url)
        try:
            out = {}
            for ask in asks:
                kind, value = ask.split(" ")
                found = await audit.history(client, data_dir, "r1", kind, value, "Asia/Shanghai")
                out[ask] = [asdict(e) for e in found]
            return out
        finally:
            await client.aclose()

    return asyncio.run(go())


def _same_tables(data_dir: Path) -> None:
    archive.materialize(data_dir, "r1")
    for name in TABLES:
        got = pl.read_parquet(archive.round_dir(data_dir, "r1") / f"{name}.parquet")
        want = pl.read_parquet(FIXTURE / "tables" / f"{name}.parquet")
        assert_frame_equal(got, want, check_row_order=False), name


def test_the_fixture_is_in_the_old_layout() -> None:
    assert len(OLD_PARTS) == 2
    for part in OLD_PARTS:
        names = set(pl.read_parquet_schema(part))
        assert {"k", "d", "x"} <= names and "kind" not in names


def test_an_old_archive_reads_as_it_did(
    server: EmbeddedServer, r: redis.Redis, tmp_path: Path
) -> None:
    _restore(r)
    _old(tmp_path, OLD_PARTS)
    _same_tables(tmp_path)
    assert _audits(server.url, tmp_path) == json.loads((FIXTURE / "audit.json").read_text())
    # Every kind's packed values land in named columns: nothing is left undecoded.
    entries = archive.journal(tmp_path, "r1").collect()
    assert entries["detail"].null_count() == entries.height
    assert set(entries.columns) == set(journal.SCHEMA)


@pytest.mark.parametrize("old_parts", [0, 1], ids=["fresh", "half-old"])
def test_a_fresh_archive_of_the_round_reads_the_same(
    server: EmbeddedServer, r: redis.Redis, tmp_path: Path, old_parts: int
) -> None:
    """The same entries archived now: parts with named columns, the same tables and
    audit; and a round whose first part was archived before the change."""
    _restore(r)
    _old(tmp_path, OLD_PARTS[:old_parts])
    _replay(r, OLD_PARTS[old_parts:])
    report = _drain(server.url, tmp_path)
    assert report.journal_left == 0
    new_parts = sorted((archive.round_dir(tmp_path, "r1") / "journal").glob("part-*.parquet"))
    assert [p.name for p in new_parts[:old_parts]] == [p.name for p in OLD_PARTS[:old_parts]]
    assert len(new_parts) == old_parts + 1  # one drain, one chunk
    for part in new_parts[old_parts:]:
        assert list(pl.read_parquet_schema(part)) == list(journal.SCHEMA)
    _same_tables(tmp_path)
    assert _audits(server.url, tmp_path) == json.loads((FIXTURE / "audit.json").read_text())

    reference = tmp_path / "reference"
    _old(reference, OLD_PARTS)
    assert_frame_equal(
        archive.journal(tmp_path, "r1").collect(), archive.journal(reference, "r1").collect()
    )
