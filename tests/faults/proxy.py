"""A TCP fault proxy on loopback, between the API (or a Binder) and Redis.

It runs its own event loop in a thread, so a synchronous test (Litestar's
TestClient) and an asynchronous one can both drive it. Modes:

* ``pass``: bytes flow both ways unchanged (and a pending :meth:`drop_after` is cancelled);
* ``delay``: every chunk waits ``delay`` seconds before it is forwarded (a slow
  or congested network);
* ``blackhole``: connections are accepted and bytes are swallowed (a peer that
  went away without a FIN: the client only learns by its timeout);
* ``reset``: every open connection is reset (RST) and new ones are reset at once.

:meth:`FaultProxy.drop_after` cuts every connection after it has carried a
number of further bytes from Redis, in the middle of a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any, Literal, Self

Mode = Literal["pass", "delay", "blackhole", "reset"]


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target_port: int, listen_port: int = 0) -> None:
        self.target_port = target_port
        self.listen_port = listen_port
        self.mode: Mode = "pass"
        self.delay = 0.0
        self.connections = 0
        self._drop_budget: int | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.listen_port}/0"

    # -- control, from any thread ----------------------------------------------------

    def _call(self, fn: Any, *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def set(self, mode: Mode, delay: float = 0.0) -> None:
        def apply() -> None:
            self.mode, self.delay = mode, delay
            if mode == "pass":
                self._drop_budget = None  # back to normal: no cut pending
            if mode == "reset":
                for w in list(self._writers):
                    _rst(w)
                self._writers.clear()

        self._call(apply)

    def drop_after(self, nbytes: int) -> None:
        """Cut every connection once ``nbytes`` more bytes have come back from Redis."""

        def apply() -> None:
            self._drop_budget = nbytes

        self._call(apply)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.listen_port), self._loop
        )
        self._server = fut.result(5)
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.transport.abort()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()  # its selector and self-pipe sockets

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the pipes -------------------------------------------------------------------------

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "reset":
            _rst(client_w)
            return
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _rst(client_w)
            return
        self._writers.update((client_w, server_w))
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, upstream=True),
                self._pipe(server_r, client_w, upstream=False),
            )
        finally:
            for w in (client_w, server_w):
                self._writers.discard(w)
                w.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.mode == "blackhole":
                    continue
                if self.mode == "delay" and self.delay:
                    await asyncio.sleep(self.delay)
                if self.mode == "reset" or writer.transport.is_closing():
                    break
                if not upstream and self._drop_budget is not None:
                    if len(data) > self._drop_budget:
                        writer.write(data[: self._drop_budget])
                        self._drop_budget = None
                        _rst(writer)
                        break
                    self._drop_budget -= len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
