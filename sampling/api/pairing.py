"""Pairing routes: an admin makes a one-time code; a handheld exchanges it for its token.

``POST /v1/pair`` is public (the handheld has no token yet), so it is rate
limited per client address, before the code is even read: 50-bit codes living
10 minutes cannot be guessed at one try a second. The token travels only in the
response body (never a URL), and nothing here logs the code or the token.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import FromPath, JSONBody

from sampling.api.auth import services
from sampling.api.limits import DeviceLimiter
from sampling.auth.models import DeviceCreated
from sampling.auth.pairing import PairIn, PairingCode

#: Exchanges one client address may try per second (burst twice that).
PAIR_RATE = 1.0


def pair_limiter(request: Request[Any, Any, Any]) -> DeviceLimiter:
    """The worker's limiter of pairing attempts, keyed by client address."""
    state = request.app.state
    limiter: DeviceLimiter | None = getattr(state, "pair_limiter", None)
    if limiter is None:
        limiter = state.pair_limiter = DeviceLimiter(PAIR_RATE)
    return limiter


def client_key(request: Request[Any, Any, Any]) -> str:
    return "pair:" + (request.client.host if request.client else "?")


class PairingController(Controller):
    path = "/v1"
    tags = ["admin"]

    @post(
        "/devices/{device_id:str}/pairing",
        operation_id="makePairingCode",
        opt={"roles": ("admin",)},
        status_code=201,
    )
    async def make(self, device_id: FromPath[str], request: Request[Any, Any, Any]) -> PairingCode:
        """A one-time pairing code for the device, valid 10 minutes (show it as text and QR)."""
        code: PairingCode = await services(request).pairing.create(device_id)
        return code

    @post("/pair", operation_id="pairDevice", status_code=200)
    async def pair(self, data: JSONBody[PairIn], request: Request[Any, Any, Any]) -> DeviceCreated:
        """Exchange a pairing code, once, for the device's new token (its old token stops)."""
        pair_limiter(request).take(client_key(request))
        made: DeviceCreated = await services(request).pairing.exchange(data.code)
        return made
