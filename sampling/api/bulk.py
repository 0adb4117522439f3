"""Bulk registration routes: a round's sites and devices in a few calls, not thousands.

Each call is all or nothing and safe to retry (``sampling.auth.bulk``,
``Sites.create_many``); risk flags already come in bulk (``PUT .../risk``).
"""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from sampling.api.auth import ServicesDep, current_device, services
from sampling.auth import bulk
from sampling.auth.models import Device, DevicesCreated, DevicesIn
from sampling.binding.models import SitesCreated, SitesIn

_ADMIN = {"roles": ("admin",)}


class BulkController(Controller):
    path = "/v1"
    tags = ["admin"]
    dependencies = {
        "device": Provide(current_device),
        "svc": Provide(services, sync_to_thread=False),
    }

    @post("/sites/bulk", operation_id="createSites", opt=_ADMIN, status_code=200)
    async def create_sites(
        self, data: JSONBody[SitesIn], device: NamedDependency[Device], svc: ServicesDep
    ) -> SitesCreated:
        """Register sites, all or none; sites already registered alike are left as they are."""
        made: SitesCreated = await svc.sites.create_many(data, by=device.id)
        return made

    @post("/devices/bulk", operation_id="createDevices", opt=_ADMIN, status_code=200)
    async def create_devices(
        self, data: JSONBody[DevicesIn], device: NamedDependency[Device], svc: ServicesDep
    ) -> DevicesCreated:
        """Register devices, all or none; the answer holds every row's token. A retry with
        the same ``op`` gets the same tokens back and registers nothing twice."""
        return await bulk.create_many(svc.redis, svc.settings.secret(), data, by=device.id)
