"""One multiplexed connection for the scan hot path.

redis-py's asyncio client takes a pooled connection per command and spends
~100 us of Python on each round trip; at the morning peak that, not Redis, is
what limits an API worker. A lane writes every command of every concurrent
request onto one connection and matches replies in order (Redis answers each
connection first-in, first-out), parsing with hiredis: one system call and one
parse for many requests (commands queued in the same turn of the event loop are
written together).

Only for a single server (a cluster routes by slot; it keeps redis-py's
cluster client). A lost connection fails the commands in flight with redis-py's
``ConnectionError`` (the API answers 503) and the next command reconnects; a
reply that is late past the timeout raises ``TimeoutError`` and, arriving
later, resolves nothing, so the order of the rest is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any
from urllib.parse import urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        #: Set once the transport has closed its socket (connection_lost ran).
        self.gone = asyncio.Event()
        self._out: list[bytes] = []
        self._flush_due = False

    def send(self, data: bytes) -> None:
        """Queue ``data``; everything queued in this turn of the loop goes in one write.

        At the peak many requests reach their Redis call in the same turn of the
        event loop; one system call for all of them (and one wake-up of the
        server) instead of one each is most of what this connection costs.
        """
        self._out.append(data)
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        out, self._out = self._out, []
        # A connection lost meanwhile has already failed the waiting commands.
        if out and self.transport is not None and not self.lost:
            self.transport.write(b"".join(out))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.gone.set()
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(RedisConnectionError(f"connection to Redis lost: {exc}"))


def _expire(futures: list[asyncio.Future[Any]]) -> None:
    for f in futures:
        if not f.done():
            f.set_exception(RedisTimeoutError("Redis did not answer in time"))


class Lane:
    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self._url = urlparse(url)
        self._timeout = timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        db = "0" if self._url.scheme == "unix" else (self._url.path or "/0").strip("/") or "0"
        self._db = int(db)

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is not None and not self._proto.lost:
                return self._proto
            try:
                if self._url.scheme == "unix":
                    conn = loop.create_unix_connection(_Protocol, self._url.path)
                else:
                    conn = loop.create_connection(
                        _Protocol, self._url.hostname or "127.0.0.1", self._url.port or 6379
                    )
                _, proto = await asyncio.wait_for(conn, self._timeout)
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
            self._proto = proto
            if self._url.password:
                await self._send(proto, ("AUTH", self._url.password))
            if self._db and self._url.scheme != "unix":
                await self._send(proto, ("SELECT", self._db))
            return proto

    async def _send(self, proto: _Protocol, *commands: tuple[Any, ...]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        proto.waiting.extend(futures)
        proto.send(b"".join([hiredis.pack_command(c) for c in commands]))
        # A timer, not asyncio.wait_for: no extra task per command on the hot path.
        timer = loop.call_later(self._timeout, _expire, futures)
        try:
            return [await f for f in futures]
        except RedisTimeoutError:
            # A connection that stopped answering (half-open TCP, a partition)
            # would time out every later command too: drop it; the commands
            # still waiting fail over to ConnectionError and the next reconnects.
            if proto.transport is not None:
                proto.transport.abort()
            raise
        finally:
            timer.cancel()

    async def execute(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send the commands back to back on the lane; their replies, errors raised."""
        proto = self._proto
        if proto is None or proto.lost:
            proto = await self._connect()
        replies = await self._send(proto, *commands)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                if text.startswith("NOSCRIPT"):
                    raise NoScriptError(text)
                raise ResponseError(text)
        return replies

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            with contextlib.suppress(Exception):
                self._proto.transport.close()
        self._proto = None

    async def aclose(self) -> None:
        """Close and wait until the socket is closed: the transport closes it on a
        later turn of the loop, which a loop about to stop would never run."""
        proto = self._proto
        self.close()
        if proto is not None and proto.transport is not None and not proto.lost:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proto.gone.wait(), self._timeout)
