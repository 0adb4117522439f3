"""Admin routes: rounds, sites, devices."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from sampling.api.auth import ServicesDep, current_device, services
from sampling.auth.models import Device, DeviceCreated, DeviceIn, DeviceView
from sampling.binding.models import Round, RoundIn, Site, SiteIn
from sampling.closing import close_round
from sampling.lab.closing import ClosingSummary  # noqa: TC001 (msgspec reads it at run time)

_ADMIN = {"roles": ("admin",)}


class ClosedRound(Round, frozen=True, kw_only=True):
    """The closed round, and its closing report in numbers."""

    closing: ClosingSummary


_READ = {"roles": ("admin", "viewer", "scanner", "sealer", "courier", "lab", "grid")}


class AdminController(Controller):
    path = "/v1"
    tags = ["admin"]
    dependencies = {
        "device": Provide(current_device),
        "svc": Provide(services, sync_to_thread=False),
    }

    @post("/rounds", operation_id="createRound", opt=_ADMIN)
    async def create_round(
        self, data: JSONBody[RoundIn], device: NamedDependency[Device], svc: ServicesDep
    ) -> Round:
        round_: Round = await svc.rounds.create(data, by=device.id)
        return round_

    @get("/rounds", operation_id="listRounds", opt=_READ)
    async def list_rounds(self, device: NamedDependency[Device], svc: ServicesDep) -> list[Round]:
        found: list[Round] = await svc.rounds.all()
        return found

    @get("/rounds/{round_id:str}", operation_id="getRound", opt=_READ)
    async def get_round(
        self, round_id: FromPath[str], device: NamedDependency[Device], svc: ServicesDep
    ) -> Round:
        found: Round = await svc.rounds.get(round_id)
        return found

    @get(
        "/rounds/{round_id:str}/counters",
        operation_id="roundCounters",
        opt={"roles": ("admin", "viewer")},
    )
    async def counters(
        self, round_id: FromPath[str], device: NamedDependency[Device], svc: ServicesDep
    ) -> dict[str, int]:
        await svc.rounds.get(round_id)
        found: dict[str, int] = await svc.rounds.counters(round_id)
        return found

    @post("/rounds/{round_id:str}/close", operation_id="closeRound", opt=_ADMIN, status_code=200)
    async def close_round(
        self, round_id: FromPath[str], device: NamedDependency[Device], svc: ServicesDep
    ) -> ClosedRound:
        """Close the round (no more scans), archive it, and write its closing report
        (``GET .../closing-report`` downloads it)."""
        found, summary = await close_round(
            svc.redis, svc.rounds, svc.lab, svc.settings, round_id, by=device.id
        )
        return ClosedRound(**msgspec.structs.asdict(found), closing=summary)

    @post("/sites", operation_id="createSite", opt=_ADMIN)
    async def create_site(
        self, data: JSONBody[SiteIn], device: NamedDependency[Device], svc: ServicesDep
    ) -> Site:
        found: Site = await svc.sites.create(data, by=device.id)
        return found

    @get("/sites", operation_id="listSites", opt=_READ)
    async def list_sites(self, device: NamedDependency[Device], svc: ServicesDep) -> list[Site]:
        found: list[Site] = await svc.sites.all()
        return found

    @post("/devices", operation_id="createDevice", opt=_ADMIN)
    async def create_device(
        self, data: JSONBody[DeviceIn], device: NamedDependency[Device], svc: ServicesDep
    ) -> DeviceCreated:
        """Register a device; the answer holds its token, shown this once."""
        found: DeviceCreated = await svc.devices.create(data, by=device.id)
        return found

    @get("/devices", operation_id="listDevices", opt=_ADMIN)
    async def list_devices(
        self, device: NamedDependency[Device], svc: ServicesDep
    ) -> list[DeviceView]:
        return [d.public() for d in await svc.devices.all()]

    @post(
        "/devices/{device_id:str}/revoke", operation_id="revokeDevice", opt=_ADMIN, status_code=200
    )
    async def revoke(
        self, device_id: FromPath[str], device: NamedDependency[Device], svc: ServicesDep
    ) -> DeviceView:
        """Revoke a device's token; it stops working at once, in every worker."""
        found: Device = await svc.devices.revoke(device_id, by=device.id)
        return found.public()

    @get("/whoami", operation_id="whoAmI", opt=_READ)
    async def whoami(self, device: NamedDependency[Device]) -> DeviceView:
        return device.public()
