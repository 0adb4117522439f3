"""HTTP routes of the binding core: thin translations to :class:`Binder`."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from sampling.api.auth import current_device, services
from sampling.auth.models import Device
from sampling.binding.models import (
    Batch,
    BatchResult,
    CloseTube,
    OpenTube,
    OpResult,
    RiskUpdate,
    Scan,
    Tube,
    Undo,
)
from sampling.binding.service import Binder

_HOT = {"roles": ("scanner", "admin"), "hot": True}


def _binder(request: Request[Any, Any, Any]) -> Binder:
    binder: Binder = services(request).binder
    return binder


class BindingController(Controller):
    path = "/v1/rounds/{round_id:str}"
    tags = ["binding"]
    dependencies = {
        "device": Provide(current_device),
        "binder": Provide(_binder, sync_to_thread=False),
    }

    @post("/tubes", operation_id="openTube", opt=_HOT, status_code=201)
    async def open_tube(
        self,
        round_id: FromPath[str],
        data: JSONBody[OpenTube],
        device: NamedDependency[Device],
        binder: NamedDependency[Binder],
    ) -> OpResult:
        """Open a new tube at the device's site (pool size 1, 5, 10, 20; default the round's)."""
        return await binder.open(
            device, round_id, data.tube, data.seq, data.op, data.capacity, data.purpose
        )

    @post("/tubes/{tube:str}/scans", operation_id="scanResident", opt=_HOT, status_code=200)
    async def scan(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        data: JSONBody[Scan],
        device: NamedDependency[Device],
        binder: NamedDependency[Binder],
    ) -> OpResult:
        """Bind a resident to the tube; the tube closes itself when full."""
        return await binder.scan(device, round_id, tube, data.seq, data.op, data.resident)

    @post("/tubes/{tube:str}/undo", operation_id="undoScan", opt=_HOT, status_code=200)
    async def undo(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        data: JSONBody[Undo],
        device: NamedDependency[Device],
        binder: NamedDependency[Binder],
    ) -> OpResult:
        """Undo the tube's last scan (a misread), reopening the tube if it had closed."""
        return await binder.undo(device, round_id, tube, data.seq, data.op, data.resident)

    @post("/tubes/{tube:str}/close", operation_id="closeTube", opt=_HOT, status_code=200)
    async def close(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        data: JSONBody[CloseTube],
        device: NamedDependency[Device],
        binder: NamedDependency[Binder],
    ) -> OpResult:
        """Close a tube by hand (the queue ran out before it was full)."""
        return await binder.close(device, round_id, tube, data.seq, data.op)

    @post("/batches", operation_id="uploadBatch", opt=_HOT, status_code=200)
    async def batch(
        self,
        round_id: FromPath[str],
        data: JSONBody[Batch],
        device: NamedDependency[Device],
        binder: NamedDependency[Binder],
    ) -> BatchResult:
        """Upload operations a handheld queued offline; each applies once, in order."""
        return await binder.batch(device, round_id, data)

    @get(
        "/tubes/{tube:str}",
        operation_id="readTube",
        opt={"roles": ("scanner", "sealer", "admin", "viewer")},
    )
    async def read_tube(
        self,
        round_id: FromPath[str],
        tube: FromPath[str],
        device: NamedDependency[Device],
        binder: NamedDependency[Binder],
    ) -> Tube:
        """A tube's state and its scans (residents shown only as hash prefixes)."""
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
        device: NamedDependency[Device],
        binder: NamedDependency[Binder],
    ) -> dict[str, int]:
        """Flag residents (Y yellow, R red code, I isolation) for single tubes; empty clears."""
        return {"updated": await binder.set_risk(round_id, data)}
