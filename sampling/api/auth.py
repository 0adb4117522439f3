"""Authentication and role checks, before anything else of a request is read.

A handler states the roles it admits in ``opt={"roles": (...)}``. The app-wide
middleware :func:`auth_middleware` runs before the body is parsed: it checks the
bearer token (or, for a signed-in page, the token cookie and, on a change, its
CSRF header), the role and the device's rate, and leaves the device in the
request's state, where handlers and the ``device`` dependency find it. (A
middleware rather than a Litestar guard: guards get a copy of the handler object
per request, which cost more than the check itself on the scan path.) A handler
without ``roles`` is public (health, readiness, the API docs); the generated
authorization test walks every route to keep it that way. Whether the object
belongs to the caller (site, lab, grid) is the domain's check.
"""

from __future__ import annotations

import hmac
from typing import Any, TypeAlias

from litestar import Request  # noqa: TC002 - Litestar reads it at runtime
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.params import SkipValidation
from litestar.types import ASGIApp, Receive, Scope, Send  # noqa: TC002

from sampling.api.services import Services
from sampling.auth.models import Device  # noqa: TC001 - read at runtime by DI
from sampling.errors import AuthError, CsrfFailed, Forbidden

#: The services as a handler's parameter (``svc: ServicesDep``), injected by name. Not
#: validated: Litestar would check the dataclass field by field on every request.
ServicesDep: TypeAlias = NamedDependency[SkipValidation[Services]]


def services(request: Request[Any, Any, Any]) -> Services:
    """The process's services (``Services``), set on the app at startup."""
    found: Services = request.app.state.services
    return found


#: The cookie a signed-in page keeps its token in (HttpOnly, SameSite=Strict), and the
#: double-submit CSRF cookie (readable by the page's script) set beside it at sign-in.
TOKEN_COOKIE = "sampling_token"
CSRF_COOKIE = "sampling_csrf"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cookies(raw: bytes) -> dict[str, str]:
    """The ``name=value`` pairs of a Cookie header (no quoting: our values are URL-safe)."""
    found: dict[str, str] = {}
    for part in raw.decode("latin-1").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name not in found:
            found[name] = value
    return found


def _token(scope: Scope) -> str:
    """The bearer token of the request, else the page's cookie (checked against CSRF)."""
    header = cookie = csrf = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value
        elif name == b"cookie":
            cookie = cookie + b"; " + value if cookie else value
        elif name == b"x-csrf-token":
            csrf = value
    if header or not cookie:
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("send the device token as 'Authorization: Bearer <token>'")
        return token.strip()
    jar = cookies(cookie)
    token = jar.get(TOKEN_COOKIE, "")
    if not token:
        raise AuthError("sign in at /ui/login, or send 'Authorization: Bearer <token>'")
    if scope.get("method", "GET") in _UNSAFE:
        # Double submit: another site's form can send our cookie but cannot read
        # the CSRF cookie to copy it into a header.
        expected = jar.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(expected.encode(), csrf):
            raise CsrfFailed(
                "this change came without the page's X-CSRF-Token header; reload the page"
            )
    return token


async def _authenticate(scope: Scope, roles: tuple[str, ...], hot: bool) -> Device:
    token = _token(scope)
    state = scope["litestar_app"].state
    svc: Services = state.services
    device = await svc.devices.authenticate(token, cached=hot)
    if device.role not in roles:
        # Known though refused: a page's refusal still shows who is signed in.
        scope.setdefault("state", {})["device"] = device
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
