"""The background archiver that ``sampling serve`` runs in every API worker.

Every worker contends for one lease (:mod:`~sampling.live.lease`); the holder
archives each open round (and a closed round whose journal is not yet empty)
every ``SAMPLING_ARCHIVE_EVERY`` seconds: the journal drained into Parquet, the
domain tables derived, then the live coverage table and the as-of stamp
(:mod:`~sampling.live.tables`). The lease is kept by its own task, so a long
pass does not lose it. Each pass runs in a child process at a lower CPU
priority (``python -m sampling.live.archiver ROUND``), so the leader's requests
wait neither for the pass's Python (the GIL) nor, on a busy machine, for its
Polars threads: the command centre's figures stay fast while a 4-million-row
round is re-derived. Each pass is the same resumable, idempotent pass as
``sampling archive``: a leader killed mid-pass takes its child with it and
leaves nothing its successor cannot finish.
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
import msgspec

from sampling import archive
from sampling.binding import keys as bkeys
from sampling.live import tables
from sampling.live.lease import Lease
from sampling.settings import Settings
from sampling.store.client import from_settings

if TYPE_CHECKING:
    from sampling.binding.rounds import Rounds
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


#: Niceness of the pass's process: API workers (nice 0) get about ten times its
#: CPU share when both want a core, yet the pass still moves on a saturated machine.
PASS_NICE = 10
#: PR_SET_PDEATHSIG from <linux/prctl.h>: the kernel signals the child when its
#: parent dies, so a SIGKILLed leader leaves no orphan pass racing its successor.
_PR_SET_PDEATHSIG = 1


class ArchivePassFailed(RuntimeError):
    pass


def _encode_settings(settings: Settings) -> bytes:
    return msgspec.json.encode(settings, enc_hook=str)


def _decode_settings(raw: bytes) -> Settings:
    def dec(kind: type, value: object) -> object:
        if kind is Path and isinstance(value, str):
            return Path(value)
        raise NotImplementedError(kind)

    return msgspec.json.decode(raw, type=Settings, dec_hook=dec)


async def _pass_in_child(settings: Settings, round_id: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sampling.live.archiver",
        round_id,
        str(os.getpid()),
        stdin=asyncio.subprocess.PIPE,
    )
    try:
        await proc.communicate(_encode_settings(settings))
    except asyncio.CancelledError:
        # The worker is shutting down: the pass is resumable, stop it rather than
        # leave it writing after the server has gone.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise ArchivePassFailed(f"round {round_id}: the archive pass exited {proc.returncode}")


def _child(argv: list[str]) -> int:
    round_id, parent = argv[0], int(argv[1])
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the death signal was set
        return 1
    os.nice(PASS_NICE)
    settings = _decode_settings(sys.stdin.buffer.read())
    logging.basicConfig(level=logging.WARNING)

    async def go() -> None:
        redis = from_settings(settings)
        try:
            await archive_round(redis, settings.data_dir, round_id)
        finally:
            await redis.aclose()

    asyncio.run(go())
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
            await _pass_in_child(self._settings, rid)
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
