"""Rounds and sampling sites: the registry the binding scripts check against."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from sampling import adminlog
from sampling.adminlog import OnceEach, Registry
from sampling.auth import keys as auth_keys
from sampling.binding import keys
from sampling.binding.errors import RoundNotFound
from sampling.binding.models import (
    POOL_SIZES,
    Round,
    RoundIn,
    Site,
    SiteIn,
    SitesCreated,
    SitesIn,
)
from sampling.binding.scripts import ALREADY_CLOSED, ROUND_NOT_FOUND, RoundClose, RoundCreate
from sampling.errors import BadInput, Conflict, NotFound
from sampling.store.client import as_bytes
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sampling.store.client import AnyRedis

    OnOpen = Callable[[str, str], Awaitable[object]]

_round_dec = msgspec.msgpack.Decoder(Round)
_site_dec = msgspec.msgpack.Decoder(Site)


def _round(raw: bytes | str) -> Round:
    return _round_dec.decode(as_bytes(raw))


def _site(raw: bytes | str) -> Site:
    return _site_dec.decode(as_bytes(raw))


_encode = msgspec.msgpack.Encoder().encode


class Rounds:
    """The round registry. A round's record lives in its own slot (``{rd:R}:meta``,
    field ``round``), the truth the binding scripts check; ``{sampling}:rounds``
    is the list of them, in the registry's slot with the admin journal."""

    def __init__(self, redis: AnyRedis, *, on_open: OnOpen | None = None) -> None:
        self._redis = redis
        self._registry = Registry(redis)
        self._run = Runner(redis)
        #: Called with (round id, who) once a round is open: the services set the
        #: round's risk flags from the register here (``sampling.lab.riskfollow``).
        self._on_open = on_open

    async def create(self, spec: RoundIn, *, by: str = "") -> Round:
        """Create a round: its state, its copy of the revoked devices and its journal
        entry in one atomic step (``round_create.lua``), then its registry entry
        with the admin journal's (``admin.lua``), then revocations made meanwhile.

        Why the last step: the two steps touch two slots (a round's, the registry's),
        so a revocation can land between them and fan out to the rounds listed
        before this one was. Revocation writes ``{sampling}:revoked`` before it
        fans out, so copying that set again after listing the round misses none:
        a revocation written before the copy is copied, one written after it
        finds the round listed."""
        if spec.pool not in POOL_SIZES:
            raise BadInput(f"pool size {spec.pool} is not one of {POOL_SIZES}", pool=spec.pool)
        made = Round(
            id=spec.id, name=spec.name, pool=spec.pool, state="open", created_at=time.time()
        )
        record = _encode(made)
        revoked = await self._redis.smembers(auth_keys.REVOKED)
        call = RoundCreate(round_id=spec.id, record=record, pool=spec.pool, by=by,
                           round_name=spec.name, revoked=list(revoked))  # fmt: skip
        created = await self._run(call)
        if not created:
            # A crash after the round's step and before its registry entry left it
            # unlisted: this retry lists it (HSETNX keeps the first record).
            found = await self.get(spec.id)
            await self._redis.hsetnx(keys.ROUNDS, spec.id, _encode(found))
            raise Conflict(f"round {spec.id} already exists", round=spec.id)
        await self._registry.write(
            keys.ROUNDS,
            spec.id,
            record,
            new=True,
            journal=adminlog.entry(
                "round_create", by, round=spec.id, name=spec.name, pool=spec.pool
            ),
        )
        late = set(await self._redis.smembers(auth_keys.REVOKED)) - set(revoked)
        if late:
            await self._redis.sadd(keys.revoked(spec.id), *late)
        if self._on_open is not None:
            await self._on_open(spec.id, by)
        return made

    async def get(self, round_id: str) -> Round:
        # The round's own record: the registry list may lag it by a crash.
        raw = await self._redis.hget(keys.meta(round_id), "round")
        if raw is None:
            raise RoundNotFound(f"no round {round_id}: check the round id", round=round_id)
        return _round(raw)

    async def all(self) -> list[Round]:
        raw = await self._redis.hgetall(keys.ROUNDS)
        listed = sorted((_round(v) for v in raw.values()), key=lambda r: r.created_at)
        # The registry keeps each round's record as created; the state is the round's.
        return [await self.get(r.id) for r in listed]

    async def close(self, round_id: str, *, by: str = "", reason: str = "") -> Round:
        found = await self.get(round_id)
        closed = msgspec.structs.replace(found, state="closed")
        call = RoundClose(round_id=round_id, record=_encode(closed), by=by, reason=reason)
        done = await self._run(call)
        if done == ROUND_NOT_FOUND:
            raise RoundNotFound(f"no round {round_id}: check the round id", round=round_id)
        if done == ALREADY_CLOSED:
            raise Conflict(f"round {round_id} is already closed", round=round_id)
        await self._registry.write(
            keys.ROUNDS,
            round_id,
            _encode(closed),
            new=False,
            journal=adminlog.entry("round_close", by, round=round_id, reason=reason),
        )
        return closed

    async def counters(self, round_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(keys.count(round_id))
        return {as_bytes(k).decode(): int(v) for k, v in raw.items()}


class Sites:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._cache: dict[str, Site] = {}

    async def create(self, spec: SiteIn, *, by: str = "") -> Site:
        site = Site(**msgspec.structs.asdict(spec))
        journal = adminlog.entry("site_create", by, site=spec.id, name=spec.name, grid=spec.grid)
        if not await Registry(self._redis).write(
            keys.SITES, spec.id, _encode(site), new=True, journal=journal
        ):
            raise Conflict(f"site {spec.id} already exists", site=spec.id)
        return site

    async def create_many(self, spec: SitesIn, *, by: str = "") -> SitesCreated:
        """Register every site of ``spec`` or none, with one admin journal entry, in one
        atomic step (``admin_bulk.lua``). A site already registered with the same
        details is left as it is, so a retried call changes nothing and journals
        nothing; one with other details is a 409 naming the row (``sites[i]``, 0-based),
        nothing written."""
        once = OnceEach("sites", "site")
        for i, s in enumerate(spec.sites):
            once(i, s.id)
        registry = Registry(self._redis)
        ids = [s.id for s in spec.sites]
        for _ in range(5):  # again when another call changed a site meanwhile
            seen = await registry.read_many(keys.SITES, ids)
            rows: list[tuple[str, bytes | None, bytes | None]] = []
            for i, (s, raw) in enumerate(zip(spec.sites, seen, strict=True)):
                site = Site(**msgspec.structs.asdict(s))
                if raw is None:
                    rows.append((s.id, None, _encode(site)))
                elif _site(raw) == site:
                    rows.append((s.id, raw, None))
                else:
                    raise Conflict(
                        f"sites[{i}]: site {s.id} already exists with other details "
                        f"({_site(raw).name}, grid {_site(raw).grid}); nothing in this "
                        "call was registered",
                        index=i,
                        site=s.id,
                    )
            made = [r[0] for r in rows if r[2] is not None]
            journal = None
            if made:
                journal = adminlog.entry(
                    "site_bulk",
                    by,
                    n=len(rows),
                    created=len(made),
                    unchanged=len(rows) - len(made),
                    ids=",".join(made),
                )
            if await registry.write_many(keys.SITES, rows, journal) == 0:
                return SitesCreated(created=len(made), unchanged=len(rows) - len(made))
        raise Conflict("the sites kept changing while this call was checked; try again")

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
