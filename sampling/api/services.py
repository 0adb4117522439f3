"""The long-lived objects one API process shares: the Redis client and the domain services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sampling.auth.devices import Devices, RevokedFanout
from sampling.auth.pairing import Pairing
from sampling.binding.rounds import Rounds, Sites
from sampling.binding.service import Binder
from sampling.boxing.config import BoxingConfig
from sampling.boxing.service import Boxer
from sampling.lab.doorlog import DoorLog
from sampling.lab.results import LabResults
from sampling.lab.review import Review
from sampling.lab.riskfollow import follow
from sampling.live.service import LiveFigures
from sampling.privacy import ResidentHasher
from sampling.store.client import from_settings
from sampling.store.lane import Lane

if TYPE_CHECKING:
    from sampling.settings import Settings
    from sampling.store.client import AnyRedis


@dataclass
class Services:
    settings: Settings
    redis: AnyRedis
    hasher: ResidentHasher
    devices: Devices
    pairing: Pairing
    rounds: Rounds
    sites: Sites
    binder: Binder
    boxer: Boxer
    lab: LabResults
    live: LiveFigures
    review: Review
    doorlog: DoorLog

    @classmethod
    def build(cls, settings: Settings) -> Services:
        redis = from_settings(settings)
        hasher = ResidentHasher(settings.secret())
        devices = Devices(redis, RevokedFanout(redis))

        async def follow_register(round_id: str, by: str) -> None:
            # A round opens with the register's risk flags already set.
            await follow(redis, settings.data_dir, by=by, rounds=[round_id])

        rounds, sites = Rounds(redis, on_open=follow_register), Sites(redis)
        url = settings.redis_url
        # The multiplexed lane serves a single server; a cluster routes by slot.
        lane = None
        if not settings.redis_cluster and url.startswith(("redis://", "unix://")):
            lane = Lane(url, timeout=settings.redis_timeout)
        boxer = Boxer(
            redis,
            BoxingConfig.from_env().with_alarms(settings),
            waitaof=settings.durability == "waitaof",
            lane=lane,
        )
        return cls(
            settings=settings,
            redis=redis,
            hasher=hasher,
            devices=devices,
            pairing=Pairing(redis, devices),
            rounds=rounds,
            sites=sites,
            binder=Binder(
                redis,
                hasher,
                rounds,
                sites,
                max_batch=settings.max_batch,
                waitaof=settings.durability == "waitaof",
                lane=lane,
                clock_skew=settings.clock_skew,
                tz=settings.tz,
            ),
            boxer=boxer,
            lab=LabResults(redis, waitaof=settings.durability == "waitaof"),
            live=LiveFigures(redis, settings, boxer),
            review=Review(redis),
            doorlog=DoorLog(redis, hasher),
        )

    async def close(self) -> None:
        await self.binder.shutdown()
        await self.boxer.shutdown()
        await self.lab.shutdown()
        await self.redis.aclose()
