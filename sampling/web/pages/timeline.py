"""Where an alarm leads: the custody timeline of a tube or a box, and a device's state.

``/ui/rounds/{round}/timeline/{code}`` renders the API's custody timeline
(``GET /v1/rounds/{round}/timeline/{code}``, the same :meth:`Boxer.timeline`);
``/ui/rounds/{round}/devices/{device}`` shows a device's registration and what
the live figures say of it (last seen, sequence numbers missing).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath

from sampling.api.auth import services
from sampling.web.layer import render, roles
from sampling.web.pages.dashboard import WATCH, read_live


@get("/ui/rounds/{round_id:str}/timeline/{code:str}", include_in_schema=False, opt=roles(*WATCH))
async def timeline(
    request: Request[Any, Any, Any], round_id: FromPath[str], code: FromPath[str]
) -> Any:
    found = await services(request).boxer.timeline(round_id, code)
    return render(request, "timeline.html", round_id=round_id, timeline=found)


@get(
    "/ui/rounds/{round_id:str}/devices/{device_id:str}", include_in_schema=False, opt=roles(*WATCH)
)
async def device_page(
    request: Request[Any, Any, Any], round_id: FromPath[str], device_id: FromPath[str]
) -> Any:
    svc = services(request)
    record = (await svc.devices.get(device_id)).public()
    live = await read_live(request, round_id)
    silent = next((d for d in live["devices"]["silent"] if d["device"] == device_id), None)
    gap = next((d for d in live["devices"]["gaps"] if d["device"] == device_id), None)
    return render(
        request,
        "device.html",
        round_id=round_id,
        record=record,
        silent=silent,
        gap=gap,
        as_of=live["as_of"],
    )


ROUTES = [timeline, device_page]
