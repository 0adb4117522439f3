"""The command centre's dashboard, ``/ui/rounds/{round}``: the live document at a glance."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath

from sampling.web.apicall import api_get
from sampling.web.layer import Link, link, render, roles

DASHBOARD = link(Link("nav.dashboard", "/ui/rounds/{round}", ("admin", "viewer"), order=10))


@get("/ui/rounds/{round_id:str}", include_in_schema=False, opt=roles("admin", "viewer"))
async def dashboard(request: Request[Any, Any, Any], round_id: FromPath[str]) -> Any:
    live = await api_get(request, f"/v1/rounds/{round_id}/live")
    return render(
        request,
        "dashboard.html",
        round_id=round_id,
        live=live.body if live.ok else None,
        problem=live,
    )


ROUTES = [dashboard]
