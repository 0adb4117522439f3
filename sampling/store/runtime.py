"""Which Redis a command talks to: the configured URL, or our embedded server.

With ``SAMPLING_REDIS_URL`` set, that server. Otherwise the embedded server of
the data directory, owned by whoever holds the data directory's lock
(``store/lock.py``):

* ``sampling serve`` holds it: the command uses the running server's socket.
* nobody holds it: the command takes the lock, starts the server for its own
  length and stops it after (a fraction of a second).
* another short command holds it: the command waits for it to finish.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from sampling.store.embedded import EmbeddedServer, answers
from sampling.store.lock import DataDirLock, DirectoryLocked

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sampling.settings import Settings

#: How long a command waits for another command that has the data directory, or
#: for a ``serve`` that is still starting its server.
WAIT_SECONDS = 30.0


def embedded_for(settings: Settings, port: int | None = None) -> EmbeddedServer:
    fsync = "always" if settings.durability == "always" else "everysec"
    return EmbeddedServer(settings.data_dir / "valkey", appendfsync=fsync, port=port)


def serve_lock(settings: Settings) -> DataDirLock:
    """The data directory's lock for a process that will run its server. Raises
    :class:`DirectoryLocked` at once when another server has it; a short command
    that has it (an admin command) is waited for."""
    lock = DataDirLock(settings.data_dir)
    try:
        return lock.acquire()
    except DirectoryLocked as held:
        if held.holder.serving:
            raise
        return lock.acquire(wait=WAIT_SECONDS)


def _serving(server: EmbeddedServer, held: DirectoryLocked) -> bool:
    """True once the ``serve`` holding the lock answers on its socket."""
    if not held.holder.serving:
        return False
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if answers(server.socket_path):
            return True
        time.sleep(0.05)
    raise held


@contextlib.contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    if settings.redis_url:
        yield settings.redis_url
        return
    server = embedded_for(settings)
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except DirectoryLocked as held:
        if _serving(server, held):
            yield server.url
            return
        lock.acquire(wait=WAIT_SECONDS)
    try:
        with server:
            yield server.url
    finally:
        lock.release()
