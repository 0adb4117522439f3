"""The background archiver that ``sampling serve`` runs in every API worker.

Every worker contends for one lease (:mod:`~sampling.live.lease`); the holder
archives each open round (and a closed round whose journal is not yet empty)
every ``SAMPLING_ARCHIVE_EVERY`` seconds: the journal drained into Parquet, the
domain tables derived, then the live coverage table and the as-of stamp
(:mod:`~sampling.live.tables`). The lease is kept by its own task, so a long
pass does not lose it; the Polars work runs in a thread so the worker keeps
answering. Each pass is the same resumable, idempotent pass as ``sampling
archive``: a leader killed mid-pass leaves nothing its successor cannot finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import anyio.to_thread

from sampling import archive
from sampling.binding import keys as bkeys
from sampling.live import tables
from sampling.live.lease import Lease
from sampling.store.client import from_settings

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.binding.rounds import Rounds
    from sampling.settings import Settings
    from sampling.store.client import AnyRedis

log = logging.getLogger(__name__)


async def archive_round(redis: AnyRedis, data_dir: Path, round_id: str) -> archive.ArchiveReport:
    """One pass over one round: drain, derive the tables, write the live tables."""
    # Everything accepted before the pass starts is in its tables: the safe as-of.
    as_of = time.time()
    report = await archive.drain(redis, round_id, data_dir)

    def derive() -> None:
        archive.materialize(data_dir, round_id)
        tables.write(data_dir, round_id, as_of)

    await anyio.to_thread.run_sync(derive)
    return report


def _pass_in_thread(settings: Settings, round_id: str) -> None:
    # The drain turns journal entries into rows in Python: on the worker's own
    # event loop that would stall its requests for the length of a chunk. In a
    # thread with its own loop and client, the interpreter switches back to the
    # requests every few milliseconds instead.
    async def go() -> None:
        redis = from_settings(settings)
        try:
            await archive_round(redis, settings.data_dir, round_id)
        finally:
            await redis.aclose()

    asyncio.run(go())


class Archiver:
    def __init__(self, redis: AnyRedis, rounds: Rounds, settings: Settings) -> None:
        self._redis = redis
        self._rounds = rounds
        self._settings = settings
        self.lease = Lease(redis, settings.archive_lease)
        self.leader = False
        self.passes = 0

    async def _keep_lease(self) -> None:
        while True:
            try:
                self.leader = await self.lease.hold()
            except Exception:  # a Redis outage must not end the loop; retry next tick
                self.leader = False
                log.exception("archiver lease: Redis did not answer")
            await asyncio.sleep(self._settings.archive_lease / 3)

    async def _due_rounds(self) -> list[str]:
        found = []
        for rnd in await self._rounds.all():
            if rnd.state == "open" or await self._redis.xlen(bkeys.journal(rnd.id)):
                found.append(rnd.id)
        return found

    async def pass_once(self) -> int:
        """Archive every due round once; returns the rounds archived."""
        ids = await self._due_rounds()
        for rid in ids:
            await anyio.to_thread.run_sync(_pass_in_thread, self._settings, rid)
        self.passes += 1
        return len(ids)

    async def run(self) -> None:
        keeper = asyncio.create_task(self._keep_lease())
        try:
            while True:
                if self.leader:
                    started = time.monotonic()
                    try:
                        await self.pass_once()
                    except Exception:  # the next pass retries; the pass is resumable
                        log.exception("archive pass failed")
                    wait = self._settings.archive_every - (time.monotonic() - started)
                else:
                    # A follower looks again often enough to start within a third
                    # of a lease of winning it.
                    wait = min(self._settings.archive_every, self._settings.archive_lease / 3)
                await asyncio.sleep(max(0.0, wait))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            if self.leader:
                with contextlib.suppress(Exception):
                    await self.lease.release()
