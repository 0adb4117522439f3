"""Which Redis a command talks to: the configured URL, or our embedded server.

With ``SAMPLING_REDIS_URL`` set, that server. Otherwise the embedded server of
the data directory: the running one if ``sampling serve`` has it up (its socket
answers), else one started for the length of the command and stopped after.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import redis

from sampling.store.embedded import EmbeddedServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sampling.settings import Settings


def _answers(socket_path: str) -> bool:
    try:
        client = redis.Redis(unix_socket_path=socket_path, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def embedded_for(settings: Settings, port: int | None = None) -> EmbeddedServer:
    fsync = "always" if settings.durability == "always" else "everysec"
    return EmbeddedServer(settings.data_dir / "valkey", appendfsync=fsync, port=port)


@contextlib.contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    if settings.redis_url:
        yield settings.redis_url
        return
    server = embedded_for(settings)
    if _answers(str(server.socket_path)):
        yield server.url
        return
    with server:
        yield server.url
