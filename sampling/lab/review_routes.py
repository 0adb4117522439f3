"""HTTP routes for held results: one tube's conflict, and a supervisor's decision on it."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from sampling.api.auth import current_device, services
from sampling.auth.models import Device
from sampling.errors import Forbidden
from sampling.lab.review import HeldCase, Resolve, Resolved, Review

_DECIDE = {"roles": ("lab", "admin")}
_READ = {"roles": ("lab", "admin", "viewer")}


def _review(request: Request[Any, Any, Any]) -> Review:
    found: Review = services(request).review
    return found


class ReviewController(Controller):
    path = "/v1/rounds/{round_id:str}/results/held/{tube:str}"
    tags = ["lab"]
    dependencies = {
        "device": Provide(current_device),
        "review": Provide(_review, sync_to_thread=False),
    }

    @get("/", operation_id="heldCase", opt=_READ)
    async def case(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        device: NamedDependency[Device],
        review: NamedDependency[Review],
    ) -> HeldCase:
        """A tube's stored result and every value held against it."""
        found = await review.case(round_id, tube)
        if device.role == "lab" and device.lab:
            labs = {h.result.lab for h in found.held} | {found.stored.lab if found.stored else ""}
            if device.lab not in labs:
                raise Forbidden("this tube's results come from another lab", tube=found.tube)
        return found

    @post("/resolve", operation_id="resolveHeld", opt=_DECIDE, status_code=200)
    async def resolve(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        data: JSONBody[Resolve],
        device: NamedDependency[Device],
        review: NamedDependency[Review],
    ) -> Resolved:
        """A lab supervisor (or an admin) keeps the stored result, takes a held one, or
        asks for a re-test, with a reason; applied and journaled in one atomic step."""
        return await review.resolve(round_id, tube, data, device=device)
