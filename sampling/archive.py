"""The archiver: drains a round's journal stream into Parquet, then derives the tables.

Each pass reads the stream after the saved cursor in chunks, decodes each chunk
into named columns (``sampling.journal``: ``kind``, ``device``, ``rhash``, the
kind's packed values each in a column of its own), writes it
to ``archive/<round>/journal/part-<first id>.parquet`` (written to a temporary
name, then renamed), saves the cursor, and trims what it archived from the
stream. Resumable and idempotent: a crash between the file and the cursor makes
the next pass write the same part again under the same name (same first id),
never a second copy; a crash between cursor and trim is finished by the next
pass's trim. One drain of a round runs at a time, whoever calls it (the
background archiver, ``sampling archive``, the load test's check): a second one
waits for the round's drain lock, so two never write overlapping parts or move
the cursor back.

The round's registry record is written beside the tables (``round.json``), so
reports can order rounds by creation time.

Then each domain that keeps tables derives them from the whole journal (the
explicit list ``MATERIALIZERS``: ``materialize(journal, out_dir)`` of each
``sampling.<domain>.archive``). A domain that indexes the live journal reads it
first (``BEFORE_TRIM``: ``before_trim(redis, round)``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import polars as pl

from sampling import journal as journal_entries
from sampling.binding import archive as binding_archive
from sampling.binding import keys
from sampling.binding.models import Round
from sampling.boxing import archive as boxing_archive
from sampling.errors import Unavailable
from sampling.lab import archive as lab_archive
from sampling.store.client import as_bytes

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from sampling.live.lease import Lease
    from sampling.store.client import AnyRedis

#: Each domain's derivation of its tables from the whole journal, in order (the
#: lab's tables read none of the others', but a reader expects binding first).
#: An explicit list: a domain added without its hook here is a visible omission,
#: not a module silently skipped.
MATERIALIZERS: tuple[Callable[[pl.LazyFrame, Path], None], ...] = (
    binding_archive.materialize,
    boxing_archive.materialize,
    lab_archive.materialize,
)
#: Domains that index the live journal before it is trimmed from Redis.
BEFORE_TRIM: tuple[Callable[[AnyRedis, str], Awaitable[None]], ...] = (boxing_archive.before_trim,)
#: Stream fields kept as hex: binary keyed hashes.
_BINARY = frozenset({"r"})
CHUNK = 50_000
#: Seconds a drain lock lasts unless renewed (once per chunk): how long a drainer
#: killed mid-pass can hold up the next one.
LOCK_S = 15.0


@dataclass(frozen=True)
class ArchiveReport:
    round: str
    entries: int
    parts: int
    journal_left: int
    directory: str


def round_dir(data_dir: Path, round_id: str) -> Path:
    return data_dir / "archive" / round_id


def rows(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> pl.DataFrame:
    """Stream entries as rows of :class:`sampling.journal.Entry` columns."""
    return journal_entries.decode(_raw(entries).lazy()).collect()


def _raw(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> pl.DataFrame:
    # The stream's own field names, every value text, binary hashes as hex.
    columns: dict[str, list[Any]] = {"id": [], "ts": []}
    for n, (sid, fields) in enumerate(entries):
        ident = sid.decode()
        columns["id"].append(ident)
        columns["ts"].append(int(ident.partition("-")[0]))
        for raw_name, value in fields.items():
            name = raw_name.decode()
            col = columns.get(name)
            if col is None:
                col = columns[name] = [None] * n
            col.append(value.hex() if name in _BINARY else value.decode())
        for col in columns.values():
            if len(col) < n + 1:
                col.append(None)
    schema = {name: (pl.Int64 if name == "ts" else pl.Utf8) for name in columns}
    return pl.DataFrame(columns, schema=schema)


def _after(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq) + 1}"


async def drain(
    redis: AnyRedis,
    round_id: str,
    data_dir: Path,
    *,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
) -> ArchiveReport:
    """Move the round's journal into Parquet parts; returns what was moved."""
    from sampling.live.lease import Lease

    lock = Lease(redis, LOCK_S, key=keys.archive_lock(round_id))
    while not await lock.hold():
        await asyncio.sleep(0.05)
    try:
        return await _drain(redis, round_id, data_dir, lock, chunk=chunk, progress=progress)
    finally:
        await lock.release()


async def _drain(
    redis: AnyRedis,
    round_id: str,
    data_dir: Path,
    lock: Lease,
    *,
    chunk: int,
    progress: Callable[[int], None] | None,
) -> ArchiveReport:
    out = round_dir(data_dir, round_id) / "journal"
    out.mkdir(parents=True, exist_ok=True)
    stream, cursor_key = keys.journal(round_id), keys.archive(round_id)
    raw = await redis.hget(cursor_key, "last_id")
    last = as_bytes(raw).decode() if raw else "0-0"
    moved = parts = 0
    while True:
        if not await lock.hold():
            raise Unavailable(
                f"round {round_id}: the drain lock expired mid-pass; the next pass resumes",
                round=round_id,
            )
        # Domains that index the live journal read it before any of it goes.
        for hook in BEFORE_TRIM:
            await hook(redis, round_id)
        # A trim interrupted last time is finished before reading on.
        await redis.xtrim(stream, minid=_after(last), approximate=False)
        entries = await redis.xrange(stream, min="(" + last, count=chunk)
        if not entries:
            break
        frame = rows(entries)  # type: ignore[arg-type]  # replies are bytes here
        first = as_bytes(entries[0][0] or b"").decode()
        target = out / f"part-{first.replace('-', '_')}.parquet"
        tmp = target.with_suffix(".tmp")
        frame.write_parquet(tmp)
        tmp.replace(target)
        last = as_bytes(entries[-1][0] or b"").decode()
        await redis.hset(cursor_key, mapping={"last_id": last})
        moved += len(entries)
        parts += 1
        if progress is not None:
            progress(len(entries))
    await write_round(redis, round_id, data_dir)
    left = await redis.xlen(stream)
    return ArchiveReport(
        round=round_id,
        entries=moved,
        parts=parts,
        journal_left=int(left),
        directory=str(out.parent),
    )


#: The round's registry record beside its tables: reports order rounds by
#: ``created_at`` (``r10`` after ``r9``), not by folder name.
ROUND_FILE = "round.json"


async def write_round(redis: AnyRedis, round_id: str, data_dir: Path) -> None:
    """Write the round's registry record (id, name, pool, state, created_at) as JSON."""
    raw = await redis.hget(keys.ROUNDS, round_id)
    if raw is None:
        return
    found = msgspec.msgpack.decode(as_bytes(raw), type=Round)
    target = round_dir(data_dir, round_id) / ROUND_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(found))
    tmp.replace(target)


def journal(data_dir: Path, round_id: str) -> pl.LazyFrame:
    """Every archived journal entry of the round, in order, as
    :class:`sampling.journal.Entry` columns (null where a kind has no such field).

    A part written before parts had named columns (``k``, ``d``, ``r``, ``x``) is
    decoded as it is read, so a round archived then reads as one archived now.
    """
    parts = sorted((round_dir(data_dir, round_id) / "journal").glob("part-*.parquet"))
    if not parts:
        # No entries yet: every column, so each domain derives its (empty) tables.
        return journal_entries.empty()
    return pl.concat(
        [journal_entries.decode(pl.scan_parquet(p)) for p in parts], how="diagonal_relaxed"
    )


def materialize(data_dir: Path, round_id: str) -> list[str]:
    """Derive every domain's tables from the archived journal; returns the files written."""
    out = round_dir(data_dir, round_id)
    frame = journal(data_dir, round_id)
    for materializer in MATERIALIZERS:
        materializer(frame, out)
    return sorted(p.name for p in out.glob("*.parquet"))


#: The round's as-of stamp: ``{"as_of": epoch}``, every change accepted before it
#: is in the round's tables.
STAMP_FILE = "archived.json"


def write_stamp(data_dir: Path, round_id: str, as_of: float) -> None:
    """Record that the round's tables hold every change accepted before ``as_of``."""
    out = round_dir(data_dir, round_id)
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / STAMP_FILE
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps({"as_of": as_of}))
    tmp.replace(stamp)


def as_of(data_dir: Path, round_id: str) -> float | None:
    """The data time of the round's archived tables: None when no pass stamped them."""
    try:
        raw = (round_dir(data_dir, round_id) / STAMP_FILE).read_text()
    except FileNotFoundError:
        return None
    return float(json.loads(raw)["as_of"])
