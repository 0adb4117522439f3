"""uvicorn's HTTP protocol, with one socket write per response.

uvicorn writes a response's status line and headers with one ``transport.write``
and its body with another: on an idle socket each is a ``send()`` system call,
and on loopback each wakes the reader. A py-spy profile of the single-scan route
(issue 17, docs/binding.md) put a fifth of an API worker's CPU in uvicorn's
``send``, most of it those writes. This protocol holds a response's head until
its body is written (uvicorn writes it next, in the same turn of the loop) and
writes both at once; a head with no body follows at the end of the turn. The
lane gathers the commands it sends to Valkey the same way
(``sampling/store/lane.py``).

Written by hand because uvicorn has no such option; the protocol class is
uvicorn's own (``uvicorn.run(http=...)``), only its transport is wrapped.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from collections.abc import Iterable


class _Gathered(asyncio.Transport):
    """A transport whose writes of one loop turn reach the socket as one write."""

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._pending:
            # The body after its head: both go now, in one write.
            self._pending.append(bytes(data))
            self._flush()
        elif bytes(data[-4:]) == b"\r\n\r\n":
            # A response's head: held for its body, which uvicorn writes next in the
            # same turn of the loop; a response without one goes at the turn's end.
            self._pending.append(bytes(data))
            self._loop.call_soon(self._flush)
        else:
            self._inner.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._inner.is_closing():
                self._inner.write(data)

    def close(self) -> None:
        # What was written before close is sent before the FIN, as the inner
        # transport would do with its own buffer.
        self._flush()
        self._inner.close()

    def abort(self) -> None:
        self._pending.clear()
        self._inner.abort()

    def write_eof(self) -> None:
        self._flush()
        self._inner.write_eof()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size() + sum(map(len, self._pending))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()


class OneWriteHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`_Gathered` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvloop's transports are not asyncio.Transport subclasses: wrapped as they are.
        super().connection_made(_Gathered(transport, self.loop))
