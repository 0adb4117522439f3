"""The API's HTTP protocol (sampling/api/http.py) on a real uvicorn server and socket:
a response's head and body reach the client in one write, and nothing else changes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sampling.api.http import OneWriteHttpTools
from sampling.store.embedded import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        body = b"hello " + path.encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


#: Socket writes seen by the counting transports below, per server.
WRITES: dict[str, int] = {}


class _Counted:
    """The transport uvicorn's loop made, with its writes counted on the way."""

    def __init__(self, inner: Any, name: str) -> None:
        self._inner, self._name = inner, name

    def write(self, data: bytes) -> None:
        WRITES[self._name] = WRITES.get(self._name, 0) + 1
        self._inner.write(data)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)


class _CountedOneWrite(OneWriteHttpTools):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(cast("asyncio.Transport", _Counted(transport, "one-write")))


class _CountedUvicorn(HttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(cast("asyncio.Transport", _Counted(transport, "uvicorn")))


def _serve(http: Any) -> Iterator[int]:
    p = free_port()
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=p, log_level="warning", http=http, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield p
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    yield from _serve(_CountedOneWrite)


@pytest.fixture(scope="module")
def plain_port() -> Iterator[int]:
    yield from _serve(_CountedUvicorn)


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _read_until(s: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _twenty(port: int) -> None:
    with _connect(port) as s:
        for n in range(20):
            s.sendall(f"GET /r{n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            data = _read_until(s, f"hello /r{n}".encode())
            assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data


def test_a_response_is_one_socket_write(port: int, plain_port: int) -> None:
    WRITES.clear()
    _twenty(port)
    _twenty(plain_port)
    # uvicorn writes the head and the body apart; this protocol writes them once.
    assert WRITES == {"one-write": 20, "uvicorn": 40}


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    with _connect(port) as s:
        s.sendall(b"".join(f"GET /p{n} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for n in range(5)))
        data = _read_until(s, b"hello /p4")
    bodies = [data.index(f"hello /p{n}".encode()) for n in range(5)]
    assert bodies == sorted(bodies)


def test_a_response_without_body_and_a_stream(port: int) -> None:
    with _connect(port) as s:
        s.sendall(b"GET /empty HTTP/1.1\r\nHost: t\r\n\r\n")
        assert _read_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 204 No Content\r\n")
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        data = _read_until(s, b"0\r\n\r\n")
    assert b"transfer-encoding: chunked" in data
    assert data.endswith(b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n")


def test_connection_close_sends_the_whole_response_first(port: int) -> None:
    with _connect(port) as s:
        s.sendall(b"GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"hello /bye")
