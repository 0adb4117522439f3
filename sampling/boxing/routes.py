"""HTTP routes of boxing and custody: thin translations to :class:`Boxer`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from sampling.api.auth import current_device, services
from sampling.api.headers import attachment
from sampling.auth.models import Device
from sampling.boxing.manifest import pdf
from sampling.boxing.models import (
    Box,
    BoxResult,
    BoxTube,
    CloseIntake,
    Discrepancies,
    Handover,
    IntakeScan,
    Manifest,
    OpenBox,
    Overdue,
    Pickup,
    Receive,
    RemoveTube,
    SealBox,
    Timeline,
)
from sampling.boxing.service import Boxer
from sampling.errors import Forbidden

_SEALER = {"roles": ("sealer",)}
_COURIER = {"roles": ("courier",)}
_LAB = {"roles": ("lab",)}
_READ = {"roles": ("admin", "viewer", "sealer", "courier", "lab")}
_WATCH = {"roles": ("admin", "viewer")}


def _boxer(request: Request[Any, Any, Any]) -> Boxer:
    boxer: Boxer = services(request).boxer
    return boxer


class BoxingController(Controller):
    path = "/v1/rounds/{round_id:str}"
    tags = ["boxing"]
    dependencies = {
        "device": Provide(current_device),
        "boxer": Provide(_boxer, sync_to_thread=False),
    }

    @post("/boxes", operation_id="openBox", opt=_SEALER, status_code=201)
    async def open_box(
        self,
        round_id: FromPath[str],
        data: JSONBody[OpenBox],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """Open a box at the sealer's site (a box barcode is used once, ever)."""
        return await boxer.open(device, round_id, data.box, seq=data.seq, op=data.op, lab=data.lab)

    @post("/boxes/{box:str}/tubes", operation_id="boxTube", opt=_SEALER, status_code=200)
    async def add_tube(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        data: JSONBody[BoxTube],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """Scan a closed tube of this site into the open box."""
        return await boxer.add(device, round_id, box, tube=data.tube, seq=data.seq, op=data.op)

    @post(
        "/boxes/{box:str}/tubes/{tube:str}/remove",
        operation_id="unboxTube",
        opt=_SEALER,
        status_code=200,
    )
    async def remove_tube(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        tube: FromPath[str],
        data: JSONBody[RemoveTube],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """Take a tube out of a box that is not sealed yet, saying why."""
        return await boxer.remove(
            device, round_id, box, tube=tube, seq=data.seq, op=data.op, reason=data.reason
        )

    @post("/boxes/{box:str}/seal", operation_id="sealBox", opt=_SEALER, status_code=200)
    async def seal(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        data: JSONBody[SealBox],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """Seal the box with what was physically counted; refused when anything disagrees."""
        return await boxer.seal(
            device,
            round_id,
            box,
            seq=data.seq,
            op=data.op,
            tubes=data.tubes,
            samples=data.samples,
            lab=data.lab,
        )

    @post("/boxes/{box:str}/handover", operation_id="handOverBox", opt=_SEALER, status_code=200)
    async def handover(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        data: JSONBody[Handover],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """The sampling point's half of the transfer: hand the sealed box to a named courier."""
        return await boxer.handover(
            device, round_id, box, seq=data.seq, op=data.op, courier=data.courier, lab=data.lab
        )

    @post("/boxes/{box:str}/pickup", operation_id="pickUpBox", opt=_COURIER, status_code=200)
    async def pickup(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        data: JSONBody[Pickup],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """The courier's half of the transfer: custody passes to the courier."""
        return await boxer.pickup(device, round_id, box, seq=data.seq, op=data.op, place=data.place)

    @post("/boxes/{box:str}/receive", operation_id="receiveBox", opt=_LAB, status_code=200)
    async def receive(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        data: JSONBody[Receive],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """The lab desk scans the arriving box; a box addressed elsewhere is refused."""
        return await boxer.receive(device, round_id, box, seq=data.seq, op=data.op)

    @post("/boxes/{box:str}/intake", operation_id="intakeTube", opt=_LAB, status_code=200)
    async def intake(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        data: JSONBody[IntakeScan],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """Scan one tube out of the received box, marking it damaged or leaking if so."""
        return await boxer.intake(
            device,
            round_id,
            box,
            tube=data.tube,
            seq=data.seq,
            op=data.op,
            condition=data.condition,
        )

    @post("/boxes/{box:str}/intake/close", operation_id="closeIntake", opt=_LAB, status_code=200)
    async def close_intake(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        data: JSONBody[CloseIntake],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> BoxResult:
        """Close the box's intake: what was not scanned is recorded missing."""
        return await boxer.close_intake(device, round_id, box, seq=data.seq, op=data.op)

    @get("/boxes/{box:str}", operation_id="readBox", opt=_READ)
    async def read_box(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> Box:
        """A box's state, custody and contents."""
        found = await boxer.box(round_id, box)
        boxer.may_read(device, found)
        return found

    @get("/courier/boxes", operation_id="courierBoxes", opt=_COURIER)
    async def courier_boxes(
        self,
        round_id: FromPath[str],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> list[Box]:
        """The boxes handed to this courier: waiting for pick-up, on the road, delivered."""
        return await boxer.courier_boxes(round_id, device.id)

    @get("/boxes/{box:str}/manifest", operation_id="boxManifest", opt=_READ)
    async def manifest(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> Manifest:
        """A sealed box's manifest: tubes, sample counts, seal time and sealer."""
        boxer.may_read(device, await boxer.box(round_id, box))
        return await boxer.manifest(round_id, box)

    @get(
        "/boxes/{box:str}/manifest.pdf",
        operation_id="boxManifestPdf",
        opt=_READ,
        media_type="application/pdf",
    )
    async def manifest_pdf(
        self,
        request: Request[Any, Any, Any],
        round_id: FromPath[str],
        box: FromPath[str],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> Response[bytes]:
        """The manifest as a printable sheet with the box code as a Code 128 barcode."""
        boxer.may_read(device, await boxer.box(round_id, box))
        found = await boxer.manifest(round_id, box)
        return Response(
            pdf(found, services(request).settings.tz),
            media_type="application/pdf",
            headers={"Content-Disposition": attachment(f"{found.box}.pdf", inline=True)},
        )

    @get("/boxes/{box:str}/discrepancies", operation_id="boxDiscrepancies", opt=_READ)
    async def discrepancies(
        self,
        round_id: FromPath[str],
        box: FromPath[str],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> Discrepancies:
        """Missing, extra and damaged tubes of a received box, with the residents each affects."""
        boxer.may_read(device, await boxer.box(round_id, box))
        return await boxer.discrepancies(round_id, box)

    @get("/timeline/{code:str}", operation_id="custodyTimeline", opt=_READ)
    async def timeline(
        self,
        round_id: FromPath[str],
        code: FromPath[str],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
    ) -> Timeline:
        """The custody timeline of a box or a tube: closed, boxed, sealed, ... intake."""
        found = await boxer.timeline(round_id, code)
        if device.role == "sealer" and any(
            e.place not in (None, device.site) for e in found.events[:1]
        ):
            raise Forbidden("this belongs to another site")
        if device.role == "lab" and found.kind == "box":
            boxer.may_read(device, await boxer.box(round_id, found.code))
        return found

    @get("/overdue", operation_id="custodyOverdue", opt=_WATCH)
    async def overdue(
        self,
        round_id: FromPath[str],
        device: NamedDependency[Device],
        boxer: NamedDependency[Boxer],
        unboxed: FromQuery[int | None] = None,
        sealed: FromQuery[int | None] = None,
        transit: FromQuery[int | None] = None,
        intake: FromQuery[int | None] = None,
        open_: Annotated[int | None, QueryParameter(name="open")] = None,
        result: FromQuery[int | None] = None,
        limit: FromQuery[int] = 200,
    ) -> Overdue:
        """What is late against the limits (seconds; defaults from the settings): tubes
        not boxed, boxes not picked up, in transit, waiting for intake, tubes left open
        (``open``) and tubes received without a result (``result``)."""
        given = {"unboxed": unboxed, "sealed": sealed, "transit": transit, "intake": intake,
                 "open": open_, "result": result}  # fmt: skip
        limits = {k: v for k, v in given.items() if v is not None}
        return await boxer.overdue(round_id, limits, limit=max(1, min(limit, 5_000)))
