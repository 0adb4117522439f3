"""The command centre's dashboard, ``/ui/rounds/{round}``: the live document at a glance.

The page and its event stream render the same partial (``_live.html``) from
``GET /v1/rounds/{round}/live``'s document (:class:`sampling.live.service.LiveFigures`,
the handler's own service, so the page's figures are the API's): the first
paint is server-side, then ``/ui/rounds/{round}/events`` sends the re-rendered
partial every ``EVERY`` seconds and htmx's SSE extension swaps it in. The
scans-per-minute chart (uPlot) lives outside the swapped part and is fed the
minutes carried in each partial.

The coverage table drills down by query: no ``street``: streets; ``street``:
its communities; ``street`` and ``community``: its grids, each with its door
list to download. The stream carries the same query, so an update keeps the
level a person chose.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, get
from litestar.params import FromPath, FromQuery
from litestar.response import ServerSentEvent, ServerSentEventMessage

from sampling.api.auth import TOKEN_COOKIE, services
from sampling.errors import AuthError, SamplingError
from sampling.web.layer import Link, link, render, roles, template_context

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

#: Seconds between two updates of an open dashboard (the brief: at most 5).
EVERY = 3.0
WATCH = ("admin", "viewer")
#: Custody from open tube to result, in the order a tube moves.
PIPELINE = ("open", "closed_unboxed", "boxed", "sealed", "in_transit", "received", "resulted")
#: Door list formats offered per grid.
DOOR_FORMATS = ("pdf", "xlsx", "csv")

link(Link("nav.dashboard", "/ui/rounds/{round}", WATCH, order=10))


def band(coverage: float) -> str:
    """The colour class of a coverage percentage (c0 red .. c4 green)."""
    for limit, name in ((50, "c0"), (70, "c1"), (85, "c2"), (95, "c3")):
        if coverage < limit:
            return name
    return "c4"


def coverage_view(rows: list[dict[str, Any]], street: str, community: str) -> dict[str, Any]:
    """The coverage rows at the level chosen: streets, a street's communities, a
    community's grids."""
    if street and community:
        level, parent = "grid", community
    elif street:
        level, parent = "community", street
    else:
        level, parent = "street", ""
    shown = [r for r in rows if r["level"] == level and (not parent or r["parent"] == parent)]
    shown.sort(key=lambda r: (r["coverage"], r["name"]))
    return {"level": level, "rows": shown, "street": street, "community": community}


async def read_live(request: Request[Any, Any, Any], round_id: str) -> dict[str, Any]:
    figures = await services(request).live.figures(round_id)
    found: dict[str, Any] = msgspec.to_builtins(figures)
    return found


def _context(round_id: str, live: dict[str, Any], street: str, community: str) -> dict[str, Any]:
    minutes = live["scans_per_minute"]
    return {
        "round_id": round_id,
        "live": live,
        "pipeline": [(stage, live["tubes"][stage]) for stage in PIPELINE],
        "coverage": coverage_view(live["coverage"], street, community),
        "band": band,
        "door_formats": DOOR_FORMATS,
        "overdue_total": sum(o["count"] for o in live["overdue"]),
        "chart": msgspec.json.encode(
            [[m["minute"] for m in minutes], [m["scans"] for m in minutes]]
        ).decode(),
    }


@get("/ui/rounds/{round_id:str}", include_in_schema=False, opt=roles(*WATCH))
async def dashboard(
    request: Request[Any, Any, Any],
    round_id: FromPath[str],
    street: FromQuery[str] = "",
    community: FromQuery[str] = "",
) -> Any:
    live = await read_live(request, round_id)
    return render(
        request,
        "dashboard.html",
        every=EVERY,
        **_context(round_id, live, street, community),
    )


@get("/ui/rounds/{round_id:str}/events", include_in_schema=False, opt=roles(*WATCH))
async def events(
    request: Request[Any, Any, Any],
    round_id: FromPath[str],
    street: FromQuery[str] = "",
    community: FromQuery[str] = "",
) -> ServerSentEvent:
    svc = services(request)
    token = request.cookies.get(TOKEN_COOKIE, "")
    engine = request.app.template_engine
    assert engine is not None  # the app is made with the pages' template config
    template = engine.get_template("_live.html")
    base = template_context(request)

    async def stream() -> AsyncGenerator[ServerSentEventMessage, None]:
        while True:
            try:
                if token:
                    # A token revoked or expired while the wall screen watches ends
                    # the stream; the page then goes to the login page.
                    await svc.devices.authenticate(token)
                live = await read_live(request, round_id)
            except AuthError:
                yield ServerSentEventMessage(event="signout", data="signout")
                return
            except SamplingError as exc:
                yield ServerSentEventMessage(event="problem", data=exc.message)
            else:
                html = template.render(**base, **_context(round_id, live, street, community))
                yield ServerSentEventMessage(event="live", data=html)
            await asyncio.sleep(EVERY)

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-store"})


ROUTES = [dashboard, events]
