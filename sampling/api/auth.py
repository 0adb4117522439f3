"""Authentication and role checks, before anything else of a request is read.

A handler states the roles it admits in ``opt={"roles": (...)}``. The app-wide
middleware :func:`auth_middleware` runs before the body is parsed: it checks the
bearer token, the role and the device's rate, and leaves the device in the
request's state, where handlers and the ``device`` dependency find it. (A
middleware rather than a Litestar guard: guards get a copy of the handler object
per request, which cost more than the check itself on the scan path.) A handler
without ``roles`` is public (health, readiness, the API docs); the generated
authorization test walks every route to keep it that way. Whether the object
belongs to the caller (site, lab, grid) is the domain's check.
"""

from __future__ import annotations

from typing import Any

from litestar import Request  # noqa: TC002 - Litestar reads it at runtime
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send  # noqa: TC002

from sampling.auth.models import Device  # noqa: TC001 - read at runtime by DI
from sampling.errors import AuthError, Forbidden


def services(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.services


async def _authenticate(scope: Scope, roles: tuple[str, ...], hot: bool) -> Device:
    header = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value
            break
    scheme, _, token = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send the device token as 'Authorization: Bearer <token>'")
    state = scope["litestar_app"].state
    device: Device = await state.services.devices.authenticate(token.strip(), cached=hot)
    if device.role not in roles:
        raise Forbidden(f"a {device.role} device may not do this", role=device.role)
    limiter = getattr(state, "limiter", None)
    if limiter is not None:
        limiter.take(device.id)
    return device


def auth_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            opt = scope["route_handler"].opt
            roles = opt.get("roles")
            if roles is not None:
                device = await _authenticate(scope, roles, bool(opt.get("hot")))
                scope.setdefault("state", {})["device"] = device
        await app(scope, receive, send)

    return middleware


async def current_device(request: Request[Any, Any, Any]) -> Device:
    """The device the auth middleware authenticated for this request."""
    device = request.state.get("device")
    if device is None:
        # A handler that takes a device must declare its roles.
        raise AuthError("this endpoint needs a device token")
    found: Device = device
    return found
