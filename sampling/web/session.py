"""Signing in from a browser: the token once, then an HttpOnly cookie.

``POST /ui/login`` checks the token exactly as the API does
(:meth:`sampling.auth.devices.Devices.authenticate`) and sets two cookies:

- ``sampling_token``: the token itself; HttpOnly (no script can read it),
  SameSite=Strict (no other site's page sends it), Path=/ (the JSON API under
  ``/v1`` accepts it, so a page's script calls the API with
  ``credentials: "same-origin"``). It is never put in a URL or a log.
- ``sampling_csrf``: a random value a page's script reads and sends back in the
  ``X-CSRF-Token`` header of every change (double submit); the auth middleware
  refuses a cookie-authenticated POST/PUT/PATCH/DELETE without it.

An expired or revoked token, or no sign-in at all, sends a page back to
``/ui/login`` (the ``/ui`` router's exception handlers below).
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect

from sampling.api.auth import CSRF_COOKIE, TOKEN_COOKIE, services
from sampling.api.problems import sampling_problem
from sampling.errors import AuthError, Forbidden, NotFound, SamplingError
from sampling.schema import Base
from sampling.web import i18n
from sampling.web.layer import LOGIN_URL, lang, render

#: How long a browser keeps a sign-in whose token has no expiry of its own.
KEEP_SECONDS = 30 * 86400


class LoginForm(Base, frozen=True):
    token: str = ""
    next: str = "/"


def safe_next(target: str | None) -> str:
    """A same-site path to go back to after signing in; anything else goes home."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _cookie(name: str, value: str, max_age: int, *, httponly: bool, secure: bool) -> Cookie:
    return Cookie(
        key=name,
        value=value,
        max_age=max_age,
        path="/",
        httponly=httponly,
        samesite="strict",
        secure=secure,
    )


def signed_out(response: Response[Any]) -> Response[Any]:
    for name in (TOKEN_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/")
    return response


@get("/ui/login", include_in_schema=False, sync_to_thread=False)
def login_form(
    request: Request[Any, Any, Any], next: FromQuery[str] = "/", expired: FromQuery[int] = 0
) -> Any:
    return render(request, "login.html", next=safe_next(next), expired=bool(expired), error="")


@post("/ui/login", include_in_schema=False, status_code=303)
async def login(
    request: Request[Any, Any, Any],
    data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Any:
    devices = services(request).devices
    try:
        device = await devices.authenticate(data.token.strip())
    except AuthError as exc:
        error = i18n.text("login.failed", lang(request), reason=exc.message)
        page = render(
            request, "login.html", status=401, next=safe_next(data.next), expired=False, error=error
        )
        return page
    keep = KEEP_SECONDS
    if device.expires_at:
        keep = max(1, int(device.expires_at - time.time()))
    secure = request.url.scheme == "https"
    response: Response[Any] = Redirect(safe_next(data.next), status_code=303)
    response.set_cookie(
        _cookie(TOKEN_COOKIE, data.token.strip(), keep, httponly=True, secure=secure)
    )
    csrf = secrets.token_urlsafe(24)
    response.set_cookie(_cookie(CSRF_COOKIE, csrf, keep, httponly=False, secure=secure))
    return response


@post("/ui/logout", include_in_schema=False, status_code=303)
async def logout(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Any:
    # The sign-out form carries the CSRF value: another site cannot sign a wall screen out.
    expected = request.cookies.get(CSRF_COOKIE, "")
    if expected and not secrets.compare_digest(expected, data.get("csrf", "")):
        raise Forbidden("sign-out came without the page's CSRF value; reload the page")
    return signed_out(Redirect(LOGIN_URL, status_code=303))


@get("/ui/lang/{code:str}", include_in_schema=False, sync_to_thread=False)
def switch_language(code: FromPath[str], next: FromQuery[str] = "/") -> Any:
    response: Response[Any] = Redirect(safe_next(next), status_code=303)
    chosen = i18n.lang_of(code)
    response.set_cookie(
        Cookie(key="lang", value=chosen, max_age=365 * 86400, path="/", samesite="strict")
    )
    return response


# The /ui router's exception handlers: a page answers a person, not a program.


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    # htmx and fetch calls get the problem JSON; a browser navigating gets a page.
    if request.headers.get("hx-request"):
        return False
    return "text/html" in request.headers.get("accept", "") or request.method == "GET"


def unauthenticated(request: Request[Any, Any, Any], exc: AuthError) -> Response[Any]:
    if request.headers.get("hx-request") or request.headers.get("accept") == "text/event-stream":
        # htmx follows HX-Redirect; an event stream just ends and the page goes to the
        # login page itself. The cookie stays until that navigation, so the login page
        # can say the sign-in expired rather than greet a stranger.
        return Response(b"", status_code=401, headers={"HX-Redirect": f"{LOGIN_URL}?expired=1"})
    had = bool(request.cookies.get(TOKEN_COOKIE))
    if request.url.path.startswith("/ui/scan"):
        # A handheld signs in by pairing, not by pasting a token.
        return signed_out(Redirect("/ui/scan/pair", status_code=303))
    target = f"{LOGIN_URL}?next={quote(request.url.path)}" + ("&expired=1" if had else "")
    return signed_out(Redirect(target, status_code=303))


def refused(request: Request[Any, Any, Any], exc: SamplingError) -> Response[Any]:
    if not _wants_html(request):
        return sampling_problem(request, exc)
    key = "error.not_found" if isinstance(exc, NotFound) else "error.forbidden"
    return render(request, "error.html", status=exc.status, title_key=key, message=exc.message)


PAGE_ERRORS = {AuthError: unauthenticated, Forbidden: refused, NotFound: refused}
ROUTES = [login_form, login, logout, switch_language]
