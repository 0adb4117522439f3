"""Liveness and readiness: the process answers, and the database answers."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from sampling.api.auth import services
from sampling.api.problems import problem


@get("/healthz", operation_id="health", tags=["health"])
async def health() -> dict[str, str]:
    """The API process is alive (says nothing about the database)."""
    return {"status": "ok"}


@get("/readyz", operation_id="ready", tags=["health"])
async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Ready to take scans: the database answers a PING within the timeout."""
    try:
        await services(request).redis.ping()
    except Exception as exc:
        return problem(
            503,
            "unavailable",
            f"database not reachable: {type(exc).__name__}",
            {"Retry-After": "2"},
        )
    return Response({"status": "ready"})
