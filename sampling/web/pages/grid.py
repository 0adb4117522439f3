"""A grid team's page, ``/ui/rounds/{round}/grids/{grid}``: its knock-on-door list.

Read through the API as the signed-in caller (``GET /v1/rounds/{round}/doors/{grid}``),
so the API's scopes hold unchanged: a grid team opens only its own grid (403
for any other; the district's dashboard is not offered to it), a viewer's list
carries no names or phone numbers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, get
from litestar.params import FromPath

from sampling.errors import Forbidden
from sampling.web.apicall import api_get
from sampling.web.layer import Link, device_of, link, render, roles

ADMITTED = ("admin", "viewer", "grid")
link(Link("nav.grid", "/ui/rounds/{round}/grids/{grid}", ("grid",), order=10))


@get("/ui/rounds/{round_id:str}/grids/{grid:str}", include_in_schema=False, opt=roles(*ADMITTED))
async def grid_page(
    request: Request[Any, Any, Any], round_id: FromPath[str], grid: FromPath[str]
) -> Any:
    device = device_of(request)
    if device is not None and device.role == "grid" and device.grid != grid:
        raise Forbidden("a grid team sees only its own grid", grid=device.grid)
    answer = await api_get(request, f"/v1/rounds/{quote(round_id)}/doors/{quote(grid)}?format=json")
    rows = answer.body if answer.ok and isinstance(answer.body, list) else []
    return render(
        request,
        "grid.html",
        round_id=round_id,
        grid=grid,
        rows=rows,
        problem="" if answer.ok else answer.detail,
        formats=("pdf", "xlsx", "csv"),
    )


ROUTES = [grid_page]
