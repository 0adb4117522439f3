"""Rounds and sampling sites: the registry the binding scripts check against."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from sampling.auth import keys as auth_keys
from sampling.binding import keys
from sampling.binding.errors import RoundNotFound
from sampling.binding.models import POOL_SIZES, Round, RoundIn, Site, SiteIn
from sampling.errors import BadInput, Conflict, NotFound
from sampling.store.client import as_bytes

if TYPE_CHECKING:
    from sampling.store.client import AnyRedis

_round_dec = msgspec.msgpack.Decoder(Round)
_site_dec = msgspec.msgpack.Decoder(Site)


def _round(raw: bytes | str) -> Round:
    return _round_dec.decode(as_bytes(raw))


def _site(raw: bytes | str) -> Site:
    return _site_dec.decode(as_bytes(raw))


_encode = msgspec.msgpack.Encoder().encode


class Rounds:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis

    async def create(self, spec: RoundIn) -> Round:
        if spec.pool not in POOL_SIZES:
            raise BadInput(f"pool size {spec.pool} is not one of {POOL_SIZES}", pool=spec.pool)
        found = Round(
            id=spec.id, name=spec.name, pool=spec.pool, state="open", created_at=time.time()
        )
        if not await self._redis.hsetnx(keys.ROUNDS, spec.id, _encode(found)):
            raise Conflict(f"round {spec.id} already exists", round=spec.id)
        # The round's own copy of the revoked set must exist before its first scan.
        revoked = await self._redis.smembers(auth_keys.REVOKED)
        if revoked:
            await self._redis.sadd(keys.revoked(spec.id), *revoked)
        await self._redis.hset(keys.meta(spec.id), mapping={"state": "open", "pool": spec.pool})
        return found

    async def get(self, round_id: str) -> Round:
        raw = await self._redis.hget(keys.ROUNDS, round_id)
        if raw is None:
            raise RoundNotFound(f"no round {round_id}: check the round id", round=round_id)
        return _round(raw)

    async def all(self) -> list[Round]:
        raw = await self._redis.hgetall(keys.ROUNDS)
        return sorted((_round(v) for v in raw.values()), key=lambda r: r.created_at)

    async def close(self, round_id: str) -> Round:
        found = await self.get(round_id)
        closed = msgspec.structs.replace(found, state="closed")
        await self._redis.hset(keys.meta(round_id), "state", "closed")
        await self._redis.hset(keys.ROUNDS, round_id, _encode(closed))
        return closed

    async def counters(self, round_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(keys.count(round_id))
        return {as_bytes(k).decode(): int(v) for k, v in raw.items()}


class Sites:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._cache: dict[str, Site] = {}

    async def create(self, spec: SiteIn) -> Site:
        site = Site(**msgspec.structs.asdict(spec))
        if not await self._redis.hsetnx(keys.SITES, spec.id, _encode(site)):
            raise Conflict(f"site {spec.id} already exists", site=spec.id)
        return site

    async def get(self, site_id: str) -> Site:
        if site_id in self._cache:
            return self._cache[site_id]
        raw = await self._redis.hget(keys.SITES, site_id)
        if raw is None:
            raise NotFound(f"no site {site_id}", site=site_id)
        self._cache[site_id] = found = _site(raw)
        return found

    async def all(self) -> list[Site]:
        raw = await self._redis.hgetall(keys.SITES)
        return sorted((_site(v) for v in raw.values()), key=lambda s: s.id)
