"""HTTP routes of the binding core: thin translations to :class:`Binder`.

The scan path is the hottest of the service, so these handlers take the
request itself and read the device (left there by the auth guard) and the
binder from it, rather than through dependency injection: Litestar resolves
two async dependencies in an anyio task group per request, which cost more CPU
here than the Redis call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Controller, Request, get, post, put
from litestar.params import FromPath, JSONBody

from sampling.api.auth import services
from sampling.binding.models import (
    Batch,
    BatchResult,
    CloseTube,
    DeviceProgress,
    OpenTube,
    OpResult,
    RiskUpdate,
    Scan,
    Tube,
    Undo,
)

if TYPE_CHECKING:
    from sampling.auth.models import Device
    from sampling.binding.service import Binder

_HOT = {"roles": ("scanner", "admin"), "hot": True}


def _ctx(request: Request[Any, Any, Any]) -> tuple[Device, Binder]:
    device: Device = request.state.device  # set by sampling.api.auth.authenticate
    binder: Binder = services(request).binder
    return device, binder


class BindingController(Controller):
    path = "/v1/rounds/{round_id:str}"
    tags = ["binding"]

    @post("/tubes", operation_id="openTube", opt=_HOT, status_code=201)
    async def open_tube(
        self,
        round_id: FromPath[str],
        data: JSONBody[OpenTube],
        request: Request[Any, Any, Any],
    ) -> OpResult:
        """Open a new tube at the device's site (pool size 1, 5, 10, 20; default the round's)."""
        device, binder = _ctx(request)
        return await binder.open(
            device, round_id, data.tube, data.seq, data.op, data.capacity, data.purpose, data.at
        )

    @post("/tubes/{tube:str}/scans", operation_id="scanResident", opt=_HOT, status_code=200)
    async def scan(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        data: JSONBody[Scan],
        request: Request[Any, Any, Any],
    ) -> OpResult:
        """Bind a resident to the tube; the tube closes itself when full."""
        device, binder = _ctx(request)
        return await binder.scan(device, round_id, tube, data.seq, data.op, data.resident, data.at)

    @post("/tubes/{tube:str}/undo", operation_id="undoScan", opt=_HOT, status_code=200)
    async def undo(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        data: JSONBody[Undo],
        request: Request[Any, Any, Any],
    ) -> OpResult:
        """Undo the tube's last scan (a misread), reopening the tube if it had closed."""
        device, binder = _ctx(request)
        return await binder.undo(device, round_id, tube, data.seq, data.op, data.resident, data.at)

    @post("/tubes/{tube:str}/close", operation_id="closeTube", opt=_HOT, status_code=200)
    async def close(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        data: JSONBody[CloseTube],
        request: Request[Any, Any, Any],
    ) -> OpResult:
        """Close a tube by hand (the queue ran out before it was full)."""
        device, binder = _ctx(request)
        return await binder.close(device, round_id, tube, data.seq, data.op, data.at)

    @post("/batches", operation_id="uploadBatch", opt=_HOT, status_code=200)
    async def batch(
        self,
        round_id: FromPath[str],
        data: JSONBody[Batch],
        request: Request[Any, Any, Any],
    ) -> BatchResult:
        """Upload operations a handheld queued offline; each applies once, in order."""
        device, binder = _ctx(request)
        return await binder.batch(device, round_id, data)

    @get("/seq", operation_id="deviceProgress", opt={"roles": ("scanner", "admin")})
    async def progress(
        self, round_id: FromPath[str], request: Request[Any, Any, Any]
    ) -> DeviceProgress:
        """The calling device's highest sequence number in the round, and its gaps."""
        device, binder = _ctx(request)
        return await binder.progress(round_id, device.id)

    @get(
        "/tubes/{tube:str}",
        operation_id="readTube",
        opt={"roles": ("scanner", "sealer", "admin", "viewer")},
    )
    async def read_tube(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        request: Request[Any, Any, Any],
    ) -> Tube:
        """A tube's state and its scans (residents shown only as hash prefixes)."""
        device, binder = _ctx(request)
        found = await binder.tube(round_id, tube)
        if device.role in ("scanner", "sealer") and found.site != device.site:
            from sampling.errors import Forbidden

            raise Forbidden("this tube belongs to another site")
        return found

    @put("/risk", operation_id="setRiskFlags", opt={"roles": ("admin",)}, status_code=200)
    async def risk(
        self,
        round_id: FromPath[str],
        data: JSONBody[RiskUpdate],
        request: Request[Any, Any, Any],
    ) -> dict[str, int]:
        """Flag residents (Y yellow, R red code, I isolation) for single tubes; empty clears."""
        _device, binder = _ctx(request)
        return {"updated": await binder.set_risk(round_id, data)}
