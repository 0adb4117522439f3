"""Authentication and role checks, as one dependency every protected handler takes.

A handler states the roles it admits in ``opt={"roles": (...)}``; the ``device``
dependency authenticates the bearer token and checks the role. Whether the
object belongs to the caller (site, lab, grid) is the domain's check.
"""

from __future__ import annotations

from typing import Any

from litestar import Request  # noqa: TC002 - Litestar reads it at runtime

from sampling.auth.models import Device  # noqa: TC001 - read at runtime by DI
from sampling.errors import AuthError, Forbidden


def services(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.services


async def current_device(request: Request[Any, Any, Any]) -> Device:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send the device token as 'Authorization: Bearer <token>'")
    opt = request.route_handler.opt
    device: Device = await services(request).devices.authenticate(
        token.strip(), cached=bool(opt.get("hot"))
    )
    roles = opt.get("roles", ())
    if device.role not in roles:
        raise Forbidden(f"a {device.role} device may not do this", role=device.role)
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        limiter.take(device.id)
    request.state.device = device
    return device
