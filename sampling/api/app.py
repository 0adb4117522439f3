"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import Litestar
from litestar.logging import LoggingConfig
from litestar.openapi import OpenAPIConfig

from sampling.api.admin import AdminController
from sampling.api.auth import auth_middleware
from sampling.api.body import SamplingRequest
from sampling.api.bulk import BulkController
from sampling.api.health import health, ready
from sampling.api.limits import DeviceLimiter, Gate, admission
from sampling.api.openapi import document
from sampling.api.pairing import PairingController
from sampling.api.problems import HANDLERS
from sampling.api.services import Services
from sampling.binding.routes import BindingController
from sampling.boxing.routes import BoxingController
from sampling.lab.closing_routes import ClosingController
from sampling.lab.door_routes import DoorController
from sampling.lab.register_routes import RegisterController
from sampling.lab.review_routes import ReviewController
from sampling.lab.routes import LabController
from sampling.live.archiver import Archiver
from sampling.live.routes import LiveController
from sampling.scan.routes import ScanController
from sampling.settings import Settings
from sampling.web import docs_plugins, routes, template_config


def create_app(settings: Settings | None = None, extra_routes: list[Any] | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    gate = Gate(settings.max_inflight, settings.max_inflight_batches)

    async def startup(app: Litestar) -> None:
        app.state.services = services = Services.build(settings)
        app.state.limiter = DeviceLimiter(settings.device_rate)
        app.state.gate = gate
        # Roles, problem responses and strict bodies in /docs (built once, here).
        document(app)
        app.state.archiver = None
        if settings.archiver:
            # Every worker contends; the lease picks one leader (sampling.live.archiver).
            archiver = Archiver(services.redis, services.rounds, settings)
            app.state.archiver = archiver
            app.state.archiver_task = asyncio.create_task(archiver.run())

    async def shutdown(app: Litestar) -> None:
        task = getattr(app.state, "archiver_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        services = getattr(app.state, "services", None)
        if services is not None:
            await services.close()

    return Litestar(
        route_handlers=[
            health,
            ready,
            AdminController,
            BulkController,
            PairingController,
            BindingController,
            BoxingController,
            LabController,
            ReviewController,
            DoorController,
            RegisterController,
            ClosingController,
            LiveController,
            ScanController,
            *routes(),
            *(extra_routes or []),
        ],
        on_startup=[startup],
        on_shutdown=[shutdown],
        template_config=template_config(),
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        middleware=[admission(gate), auth_middleware],
        request_max_body_size=settings.max_body,
        request_class=SamplingRequest,
        openapi_config=OpenAPIConfig(
            title="sampling",
            version="0.1.0",
            description="Sample tracking for city-scale mass testing. Every error is an RFC 9457 "
            "problem document with a stable `code`. Authenticate with `Authorization: Bearer "
            "<device or staff token>`; a page signed in at `/ui/login` sends its cookie instead, "
            "and on a change also the `X-CSRF-Token` header equal to the `sampling_csrf` "
            "cookie. Each operation names the roles it admits.",
            path="/docs",
            render_plugins=docs_plugins(),
        ),
        # Warnings and errors only: a scan per request at INFO would drown the log
        # (and nothing here may log a resident code at any level).
        logging_config=LoggingConfig(root={"level": "WARNING", "handlers": ["queue_listener"]}),
        debug=False,
    )
