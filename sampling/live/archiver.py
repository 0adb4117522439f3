"""The background archiver that ``sampling serve`` runs in every API worker.

Every worker contends for one lease (:mod:`~sampling.live.lease`); the holder
archives each open round (and a closed round whose journal is not yet empty)
every ``SAMPLING_ARCHIVE_EVERY`` seconds: the journal drained into Parquet, the
domain tables derived, then the live coverage table and the as-of stamp
(:mod:`~sampling.live.tables`). The lease is kept by its own task, so a long
pass does not lose it. The drain runs in a thread of the leader (it holds the
round's drain lock); the derivation, which re-reads the whole round with Polars,
runs in a child process at a lower CPU priority (``python -m
sampling.live.archiver``), so the leader's requests wait neither for its Python
(the GIL) nor, on a busy machine, for its threads: the command centre's figures
stay fast while a 4-million-row round is re-derived. Each pass is the same
resumable, idempotent pass as ``sampling archive``: a leader killed mid-pass
takes its child with it and leaves nothing its successor cannot finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from sampling import archive
from sampling.binding import keys as bkeys
from sampling.live import tables
from sampling.live.lease import Lease
from sampling.store.client import from_settings

if TYPE_CHECKING:
    from sampling.binding.rounds import Rounds
    from sampling.settings import Settings
    from sampling.store.client import AnyRedis

log = logging.getLogger(__name__)


def derive(data_dir: Path, round_id: str, as_of: float) -> None:
    """The second half of a pass: the domain tables, then the live tables and stamp."""
    archive.materialize(data_dir, round_id)
    tables.write(data_dir, round_id, as_of)


async def archive_round(redis: AnyRedis, data_dir: Path, round_id: str) -> archive.ArchiveReport:
    """One pass over one round: drain, derive the tables, write the live tables."""
    # Everything accepted before the pass starts is in its tables: the safe as-of.
    as_of = time.time()
    report = await archive.drain(redis, round_id, data_dir)
    await anyio.to_thread.run_sync(derive, data_dir, round_id, as_of)
    return report


def _drain_in_thread(settings: Settings, round_id: str) -> float:
    # The drain turns journal entries into rows in Python: on the worker's own
    # event loop that would stall its requests for the length of a chunk. In a
    # thread with its own loop and client, the interpreter switches back to the
    # requests every few milliseconds instead. It stays in this process because it
    # holds the round's drain lock: a child killed with its leader would leave the
    # lock to expire before the successor could drain.
    async def go() -> float:
        as_of = time.time()
        redis = from_settings(settings)
        try:
            await archive.drain(redis, round_id, settings.data_dir)
        finally:
            await redis.aclose()
        return as_of

    return asyncio.run(go())


#: Niceness of the derivation's process: API workers (nice 0) get about ten times
#: its CPU share when both want a core, yet it still moves on a saturated machine.
DERIVE_NICE = 10
#: PR_SET_PDEATHSIG from <linux/prctl.h>: the kernel signals the child when its
#: parent dies, so a SIGKILLed leader leaves no orphan derivation behind.
_PR_SET_PDEATHSIG = 1


class ArchivePassFailed(RuntimeError):
    pass


async def _derive_in_child(data_dir: Path, round_id: str, as_of: float) -> None:
    # The derivation re-reads the whole round with Polars, whose threads would take
    # both cores from the leader's requests (and its Python, the GIL): in a child
    # at a lower priority the command centre's figures stay fast meanwhile.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sampling.live.archiver",
        str(data_dir),
        round_id,
        repr(as_of),
        str(os.getpid()),
    )
    try:
        await proc.wait()
    except asyncio.CancelledError:
        # The worker is shutting down: the derivation is idempotent, stop it rather
        # than leave it writing after the server has gone.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise ArchivePassFailed(f"round {round_id}: the derivation exited {proc.returncode}")


def _child(argv: list[str]) -> int:
    data_dir, round_id, as_of, parent = Path(argv[0]), argv[1], float(argv[2]), int(argv[3])
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the death signal was set
        return 1
    os.nice(DERIVE_NICE)
    derive(data_dir, round_id, as_of)
    return 0


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
            as_of = await anyio.to_thread.run_sync(_drain_in_thread, self._settings, rid)
            await _derive_in_child(self._settings.data_dir, rid, as_of)
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


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
