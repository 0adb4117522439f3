"""The one table from errors to RFC 9457 problem details.

Every error body has ``type``, ``title``, ``status``, ``detail`` (the message a
person acts on) and ``code`` (stable, machine-readable), plus the error's own
fields. Redis being unreachable is a 503 with ``Retry-After``, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    RedisError,
    TimeoutError,
)

from sampling.errors import SamplingError

log = logging.getLogger("sampling.api")
MEDIA = "application/problem+json"
RETRY_AFTER = "2"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Refused",
    413: "Too large",
    415: "Unsupported",
    422: "Unprocessable",
    429: "Too many requests",
    503: "Unavailable",
}


def problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body = {
        "type": f"https://sampling.invalid/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return Response(body, status_code=status, media_type=MEDIA, headers=headers)


def sampling_problem(_: Request[Any, Any, Any], exc: SamplingError) -> Response[dict[str, Any]]:
    retry = str(exc.detail.get("retry_after", RETRY_AFTER))
    headers = {"Retry-After": retry} if exc.status in (429, 503) else None
    extra = {k: v for k, v in exc.detail.items() if k not in ("type", "title", "status", "code")}
    return problem(exc.status, exc.code, exc.message, headers, **extra)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    return problem(400, "invalid_request", str(exc.detail), errors=errors)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = {
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        401: "unauthorized",
        403: "forbidden",
        429: "rate_limited",
    }.get(exc.status_code, "http_error")
    headers = {"Retry-After": RETRY_AFTER} if exc.status_code in (429, 503) else None
    return problem(exc.status_code, code, str(exc.detail), headers)


def _redis(_: Request[Any, Any, Any], exc: RedisError) -> Response[dict[str, Any]]:
    if isinstance(exc, ConnectionError | TimeoutError | BusyLoadingError | ClusterDownError):
        return problem(
            503,
            "unavailable",
            "The database cannot be reached; nothing was "
            "changed. Retry in a moment with the same operation id.",
            {"Retry-After": RETRY_AFTER},
        )
    log.exception("redis error")
    return problem(
        503,
        "unavailable",
        "The database refused the request; retry shortly.",
        {"Retry-After": RETRY_AFTER},
    )


def _undecodable(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    # Litestar decodes multipart text fields itself; bytes that are not UTF-8 are bad input.
    return problem(400, "invalid_request", "The request holds text that is not valid UTF-8.")


def _internal(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error", exc_info=exc)
    return problem(
        500, "internal", "Something went wrong on the server; retry with the same operation id."
    )


HANDLERS = {
    SamplingError: sampling_problem,
    ValidationException: _validation,
    NotFoundException: _http,
    HTTPException: _http,
    RedisError: _redis,
    UnicodeDecodeError: _undecodable,
    Exception: _internal,
}
