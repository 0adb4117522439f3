"""The pages people use, served by the API's own Litestar app (see README.md here).

:func:`routes` is everything the app mounts for pages: the landing page ``/``,
the ``/ui`` router (sign-in, the pages, their exception handlers) and the
vendored assets under ``/ui/static``. To add a page, add its module to ``PAGES``.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.static_files import create_static_files_router

from sampling.web import session
from sampling.web.layer import STATIC, STATIC_URL, template_config
from sampling.web.pages import (
    box,
    courier,
    dashboard,
    doors,
    grid,
    home,
    intake,
    results,
    scan,
    timeline,
)

#: Every page module; each exports ``ROUTES`` (handlers with full ``/ui/...`` paths).
PAGES: list[Any] = [
    session, dashboard, timeline, grid, scan, box, courier, intake, results, doors,
]  # fmt: skip


def routes() -> list[Any]:
    pages = [handler for module in PAGES for handler in module.ROUTES]
    return [
        # Its own router so that a page's refusals render as pages (session.PAGE_ERRORS).
        Router(path="/", route_handlers=pages, exception_handlers=session.PAGE_ERRORS),  # type: ignore[arg-type]
        *home.ROUTES,
        create_static_files_router(
            path=STATIC_URL,
            directories=[STATIC],
            # Vendored files change only with a release; a wall screen reloads nothing.
            include_in_schema=False,
        ),
    ]


def docs_plugins() -> list[Any]:
    """``/docs`` from the vendored Swagger UI: no request leaves the district network."""
    from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin

    vendor = f"{STATIC_URL}/vendor/swagger-ui"
    return [
        SwaggerRenderPlugin(
            path="/",
            js_url=f"{vendor}/swagger-ui-bundle.js",
            css_url=f"{vendor}/swagger-ui.css",
            standalone_preset_js_url=f"{vendor}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/svg+xml' href='{STATIC_URL}/favicon.svg'>",
        ),
        JsonRenderPlugin(path="/openapi.json"),
    ]


__all__ = ["PAGES", "docs_plugins", "routes", "template_config"]
