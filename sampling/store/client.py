"""Async Redis clients for a single server or a cluster, built from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

if TYPE_CHECKING:
    from sampling.settings import Settings

#: Either kind of client; the domain code uses only commands both share.
AnyRedis = Redis | RedisCluster


def connect(url: str, *, cluster: bool = False, timeout: float = 2.0) -> AnyRedis:
    """A client for ``url``. Replies stay bytes: resident hashes are binary."""
    opts: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": False,
    }
    if cluster:
        return RedisCluster.from_url(url, **opts)
    return Redis.from_url(url, max_connections=256, health_check_interval=0, **opts)


def from_settings(settings: Settings, url: str | None = None) -> AnyRedis:
    return connect(
        url or settings.redis_url,
        cluster=settings.redis_cluster,
        timeout=settings.redis_timeout,
    )
