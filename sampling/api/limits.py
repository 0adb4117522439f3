"""Abuse limits of one API worker: a token bucket per device, and admission control.

Both are per worker process, in memory: a worker never waits on Redis to decide
whether to refuse, so a refusal costs microseconds even when the database is the
thing that is slow.

* :class:`DeviceLimiter` keys its buckets on the *authenticated* device id
  (``current_device`` calls :meth:`DeviceLimiter.take` after the token checks
  out), never on a header the client chooses. ``rate`` tokens a second, a burst
  of twice that. With ``W`` workers a device gets at most ``W x rate``; the
  limit is there to stop one runaway handheld, not to meter fair use.
* :func:`admission` is an ASGI middleware capping the requests a worker has in
  flight. Past the cap a request is answered at once with 503 ``overloaded``
  and ``Retry-After``: under overload the service says "later" quickly instead
  of letting every request queue until the client times out.
  Offline batch uploads (``POST .../batches``) have room of their own
  (``batch_limit``) and never take the single requests' room: when every
  handheld of a district reconnects at once with hundreds of queued operations,
  the batches queue among themselves (503, try again) while the online
  handhelds' single scans still get in at once.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.enums import ScopeType

from sampling.errors import RateLimited

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.types import ASGIApp, Receive, Scope, Send

#: Buckets kept per worker before idle ones are dropped (a full bucket and a
#: missing one mean the same thing, so dropping is always safe).
MAX_BUCKETS = 100_000
#: Paths never refused by admission control: liveness must answer under load.
EXEMPT = frozenset({"/healthz"})
#: Path ending of the offline batch upload (``/v1/rounds/<round>/batches``), which
#: admission counts apart from single requests.
BATCH_SUFFIX = "/batches"


class DeviceLimiter:
    """Token buckets per device id: ``rate`` per second, burst ``2 x rate``."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = 2.0 * rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, device_id: str) -> None:
        """Spend one token of the device's bucket, or raise :class:`RateLimited`."""
        now = self._clock()
        tokens, last = self._buckets.get(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[device_id] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(
                f"too many requests from this device; wait {wait} s and send again "
                "(the same operation id is applied once)",
                retry_after=wait,
            )
        if len(self._buckets) >= MAX_BUCKETS and device_id not in self._buckets:
            self._prune(now)
        self._buckets[device_id] = (tokens - 1.0, now)

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()


_OVERLOADED = msgspec.json.encode(
    {
        "type": "https://sampling.invalid/problems/overloaded",
        "title": "Unavailable",
        "status": 503,
        "code": "overloaded",
        "detail": "The service is busy; nothing was changed. Retry in a moment with the same "
        "operation id.",
    }
)
_HEADERS = [
    (b"content-type", b"application/problem+json"),
    (b"content-length", str(len(_OVERLOADED)).encode()),
    (b"retry-after", b"1"),
]


class Gate:
    """The in-flight counts of one worker, shared by every route's middleware instance
    (Litestar builds the middleware stack once per route handler): ``limit`` for
    single requests, ``batch_limit`` apart for offline batch uploads."""

    def __init__(self, limit: int, batch_limit: int = 4) -> None:
        self.limit = limit
        self.batch_limit = batch_limit
        self.inflight = 0
        self.batches = 0
        self.refused = 0
        self.refused_batches = 0


def _is_batch(scope: Scope) -> bool:
    return scope.get("method") == "POST" and str(scope["path"]).endswith(BATCH_SUFFIX)


class Admission:
    """ASGI middleware: at most ``gate.limit`` HTTP requests in flight in this worker."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        if scope["type"] != ScopeType.HTTP or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if _is_batch(scope):
            if gate.batches >= gate.batch_limit:
                gate.refused_batches += 1
                await _refuse(send)
                return
            gate.batches += 1
            try:
                await self.app(scope, receive, send)
            finally:
                gate.batches -= 1
            return
        if gate.inflight >= gate.limit:
            gate.refused += 1
            await _refuse(send)
            return
        gate.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            gate.inflight -= 1


async def _refuse(send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _OVERLOADED})  # type: ignore[arg-type]


def admission(gate: Gate) -> Callable[[ASGIApp], Any]:
    """The middleware factory Litestar takes: ``middleware=[admission(Gate(256, 4))]``."""

    def build(app: ASGIApp) -> Admission:
        return Admission(app, gate)

    return build
