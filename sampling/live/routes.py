"""``GET /v1/rounds/{round}/live``: the round's live figures for the command centre.

Admin and viewer only. A grid team's token gets 403: the document is the
district's (every grid's coverage, every device); a grid team has its door list.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from sampling.api.auth import current_device, services
from sampling.auth.models import Device
from sampling.live.models import Live
from sampling.live.service import LiveFigures

_WATCH = {"roles": ("admin", "viewer")}


def _live(request: Request[Any, Any, Any]) -> LiveFigures:
    found: LiveFigures = services(request).live
    return found


class LiveController(Controller):
    path = "/v1/rounds/{round_id:str}"
    tags = ["live"]
    dependencies = {
        "device": Provide(current_device),
        "live": Provide(_live, sync_to_thread=False),
    }

    @get("/live", operation_id="liveFigures", opt=_WATCH)
    async def figures(
        self,
        round_id: FromPath[str],
        device: NamedDependency[Device],
        live: NamedDependency[LiveFigures],
    ) -> Live:
        """The round now: residents and coverage, scans per minute, tubes and boxes by
        stage, results, positives and re-sample orders, overdue, devices, alarms.

        From counters the atomic steps keep and the latest archived tables
        (``archived_at``; coverage per street, community and grid is as of then).
        """
        return await live.figures(round_id)
