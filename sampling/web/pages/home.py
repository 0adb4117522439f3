"""The landing page ``/``: the pages the signed-in role may open, else the way to sign in."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from sampling.api.auth import TOKEN_COOKIE, services
from sampling.errors import AuthError
from sampling.web.layer import links_for, render


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Any:
    # Public, so that a browser with no sign-in sees a way in rather than a 401;
    # a cookie present is checked the same way the middleware checks it.
    svc = services(request)
    token = request.cookies.get(TOKEN_COOKIE, "")
    device = None
    if token:
        try:
            device = await svc.devices.authenticate(token)
        except AuthError:
            device = None
    request.state.device = device
    links = links_for(device)
    rounds = await svc.rounds.all() if device is not None else []
    pages = []
    for entry in links:
        if entry.per_round:
            for r in rounds:
                href = entry.href.format(round=r.id, grid=device.grid if device else "")
                pages.append({"key": entry.key, "href": href, "round": r})
        else:
            href = entry.href.format(grid=device.grid if device else "")
            pages.append({"key": entry.key, "href": href, "round": None})
    return render(request, "home.html", pages=pages, expired=bool(token) and device is None)


ROUTES = [home]
