"""A lease in Redis: at most one holder across every worker and host (the archiver
leader's ``sampling:archiver:lease``; a round's drain lock).

Taken with ``SET NX PX`` and kept by ``lease.lua`` (renew only while we hold it).
A holder that dies stops renewing; the key expires after one lease length and
the next contender's attempt takes it, so a successor leads within
``ttl + ttl / 3`` when contenders try every third of a lease.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING

from sampling.live import keys
from sampling.live.scripts import KeepLease
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from sampling.store.client import AnyRedis


def holder_id() -> str:
    """This process, recognisably: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(
        self, redis: AnyRedis, ttl: float, holder: str | None = None, key: str = keys.LEASE
    ) -> None:
        self._redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl * 1000))
        self.holder = holder or holder_id()
        self._run = Runner(redis)

    async def hold(self) -> bool:
        """Renew the lease if we hold it, else try to take it; True when we hold it now."""
        if await self._run(KeepLease(self.key, self.holder, self.ttl_ms)):
            return True
        taken = await self._redis.set(self.key, self.holder, nx=True, px=self.ttl_ms)
        return bool(taken)

    async def release(self) -> None:
        await self._run(KeepLease(self.key, self.holder, 0))

    async def current(self) -> str | None:
        raw = await self._redis.get(self.key)
        return raw.decode() if isinstance(raw, bytes) else raw
