"""The archiver lease on the real server: one leader among contenders, takeover after
the leader stops renewing, and only the holder renews or releases."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import redis.asyncio as aredis

from sampling.live import keys
from sampling.live.lease import Lease

if TYPE_CHECKING:
    import redis

    from sampling.store.embedded import EmbeddedServer

TTL = 0.6


async def _contend(leases: list[Lease]) -> list[bool]:
    return list(await asyncio.gather(*(lease.hold() for lease in leases)))


def test_one_leader_among_many(
    server: EmbeddedServer, r: redis.Redis, loop: asyncio.AbstractEventLoop
) -> None:
    async def go() -> None:
        client = aredis.Redis.from_url(server.url)
        leases = [Lease(client, TTL, holder=f"w{i}") for i in range(8)]
        for _ in range(5):
            held = await _contend(leases)
            assert held.count(True) == 1
            leader = leases[held.index(True)]
            assert await leader.current() == leader.holder
        await client.aclose()

    loop.run_until_complete(go())


def test_takeover_after_the_leader_stops(
    server: EmbeddedServer, r: redis.Redis, loop: asyncio.AbstractEventLoop
) -> None:
    async def go() -> float:
        client = aredis.Redis.from_url(server.url)
        leases = [Lease(client, TTL, holder=f"w{i}") for i in range(4)]
        held = await _contend(leases)
        leader = leases[held.index(True)]
        others = [x for x in leases if x is not leader]
        # The leader renews past its first lease: nobody else gets in.
        for _ in range(4):
            await asyncio.sleep(TTL / 3)
            assert await leader.hold()
            assert not any(await _contend(others))
        # Now it stops (as a SIGKILLed worker would); the others keep trying.
        stopped = time.monotonic()
        while not any(held := await _contend(others)):
            await asyncio.sleep(TTL / 3)
        waited = time.monotonic() - stopped
        assert held.count(True) == 1
        # The old leader cannot renew or release what it no longer holds.
        assert not await leader.hold()
        await leader.release()
        assert await client.get(keys.LEASE) == others[held.index(True)].holder.encode()
        await client.aclose()
        return waited

    waited = loop.run_until_complete(go())
    assert TTL * 0.8 <= waited <= 2 * TTL


def test_release_hands_over_at_once(
    server: EmbeddedServer, r: redis.Redis, loop: asyncio.AbstractEventLoop
) -> None:
    async def go() -> None:
        client = aredis.Redis.from_url(server.url)
        a, b = Lease(client, 30.0, holder="a"), Lease(client, 30.0, holder="b")
        assert await a.hold()
        assert not await b.hold()
        await a.release()
        assert await b.hold()
        await client.aclose()

    loop.run_until_complete(go())
