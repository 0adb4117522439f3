"""Authentication and role checks, before anything else of a request is read.

A handler states the roles it admits in ``opt={"roles": (...)}``. The app-wide
guard :func:`authenticate` runs before the body is parsed: it checks the bearer
token, the role and the device's rate, and leaves the device on the request,
where the ``device`` dependency finds it. A handler without ``roles`` is public
(health, readiness, the API docs); the generated authorization test walks every
route to keep it that way. Whether the object belongs to the caller (site, lab,
grid) is the domain's check.
"""

from __future__ import annotations

from typing import Any

from litestar import Request  # noqa: TC002 - Litestar reads it at runtime
from litestar.connection import ASGIConnection  # noqa: TC002 - Litestar reads it at runtime
from litestar.handlers import BaseRouteHandler  # noqa: TC002 - Litestar reads it at runtime

from sampling.auth.models import Device  # noqa: TC001 - read at runtime by DI
from sampling.errors import AuthError, Forbidden


def services(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.services


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    opt = handler.opt
    roles = opt.get("roles")
    if roles is None:
        return
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send the device token as 'Authorization: Bearer <token>'")
    device: Device = await connection.app.state.services.devices.authenticate(
        token.strip(), cached=bool(opt.get("hot"))
    )
    if device.role not in roles:
        raise Forbidden(f"a {device.role} device may not do this", role=device.role)
    limiter = getattr(connection.app.state, "limiter", None)
    if limiter is not None:
        limiter.take(device.id)
    connection.state.device = device


async def current_device(request: Request[Any, Any, Any]) -> Device:
    """The device the guard authenticated for this request."""
    device = request.state.get("device")
    if device is None:
        # A handler that takes a device must declare its roles.
        raise AuthError("this endpoint needs a device token")
    found: Device = device
    return found
