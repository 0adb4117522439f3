"""What ``/docs`` says beyond what Litestar infers: roles, errors, strict bodies.

Litestar builds the OpenAPI document from the handlers' signatures; this adds,
once, at start-up, to that same document object:

- each operation's **roles** (from its ``opt["roles"]``, the ones the auth
  middleware enforces) at the head of its description (how to send the token
  is said once, in the API's description: no per-operation security
  requirement, which schema fuzzers would negate by dropping a header the
  client always sends);
- its **error responses** as RFC 9457 ``application/problem+json`` documents
  (the ``Problem`` schema: ``type``, ``title``, ``status``, ``code``,
  ``detail``), for the statuses that can occur there: 401, 403 and 429 where a
  token is needed, 404 where the path names an object, 400 and 413 where a body
  or query is read, 409 where a change can be refused by a rule of the domain,
  422 where an operation id makes the change idempotent, and 503 everywhere
  (Redis unreachable, a write not confirmed durable, the worker overloaded);
- ``additionalProperties: false`` on every schema of a Struct declared with
  ``forbid_unknown_fields`` (``sampling.schema.Base``): the server refuses
  unknown fields, and the document says so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
)

from sampling.api.problems import MEDIA

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.openapi.spec import OpenAPI, Operation

PROBLEM = "Problem"
_METHODS = ("get", "put", "post", "delete", "patch")
_CHANGES = ("put", "post", "delete", "patch")

#: What each status means here, and the codes it carries.
ERRORS: dict[int, str] = {
    400: "The request is malformed (`invalid_request`, `bad_input`, `garbled_code`): "
    "fix the field the problem names; nothing was changed.",
    401: "No token, or an unknown, expired or revoked one (`unauthorized`).",
    403: "The token's role may not do this, or the object belongs to another site, lab "
    "or grid (`forbidden`); a signed-in page's change without its X-CSRF-Token header "
    "(`csrf_failed`).",
    404: "The round or the object the path names does not exist (`not_found`).",
    409: "A rule of the domain refused the change; `code` says which (for example "
    "`tube_full`, `resident_already_sampled`, `box_sealed`). Nothing was changed.",
    413: "The body or the batch is larger than allowed (`body_too_large`, `batch_too_large`).",
    422: "The operation id was already used with a different payload (`operation_reused`).",
    429: "This device is sending faster than its rate (`rate_limited`): wait `Retry-After` "
    "seconds.",
    503: "The database cannot be reached, the write was not confirmed on disk, or the "
    "server is at capacity (`unavailable`, `not_durable`, `overloaded`): retry after "
    "`Retry-After` seconds with the same operation id.",
}


def _problem_schema() -> Schema:
    text = Schema(type=OpenAPIType.STRING)
    return Schema(
        type=OpenAPIType.OBJECT,
        title=PROBLEM,
        description="An RFC 9457 problem document; the error's own fields may follow.",
        properties={
            "type": Schema(type=OpenAPIType.STRING, format=None, description="a URI per code"),
            "title": text,
            "status": Schema(type=OpenAPIType.INTEGER),
            "code": Schema(type=OpenAPIType.STRING, description="stable, machine-readable"),
            "detail": Schema(type=OpenAPIType.STRING, description="what to do about it"),
        },
        required=["type", "title", "status", "code", "detail"],
    )


def _response(status: int) -> OpenAPIResponse:
    headers: dict[str, OpenAPIHeader | Reference] | None = None
    if status in (429, 503):
        headers = {
            "Retry-After": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.INTEGER), description="seconds to wait"
            )
        }
    return OpenAPIResponse(
        description=ERRORS[status],
        headers=headers,
        content={MEDIA: OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{PROBLEM}"))},
    )


def _handlers(app: Litestar) -> dict[tuple[str, str], dict[str, Any]]:
    """(method, OpenAPI path) -> the handler's ``opt``."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for route in app.routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for handler in getattr(route, "route_handlers", []):
            for method in getattr(handler, "http_methods", ()):
                found[(method.lower(), path)] = handler.opt
    return found


def _body_schema(openapi: OpenAPI, op: Operation) -> Schema | None:
    if op.request_body is None or isinstance(op.request_body, Reference):
        return None
    for media in (op.request_body.content or {}).values():
        schema = media.schema
        if isinstance(schema, Reference):
            name = schema.ref.rsplit("/", 1)[-1]
            schemas = openapi.components.schemas if openapi.components else {}
            found = schemas.get(name)
            return found if isinstance(found, Schema) else None
        return schema
    return None


def _statuses(openapi: OpenAPI, method: str, path: str, op: Operation, roles: Any) -> list[int]:
    statuses = [503]
    if roles is not None:
        statuses += [401, 403, 429]
    if "{" in path:
        statuses.append(404)
    queried = any(getattr(p, "param_in", None) == "query" for p in op.parameters or ())
    if op.request_body is not None or queried:
        statuses.append(400)
    if op.request_body is not None:
        statuses.append(413)
    if method in _CHANGES and roles is not None:
        statuses.append(409)
        body = _body_schema(openapi, op)
        keyed = body is not None and "op" in (body.properties or {})
        if keyed or op.operation_id == "uploadBatch":
            statuses.append(422)
    return sorted(statuses)


def _strict_names() -> set[str]:
    """Names of Structs that refuse unknown fields (and of none that accept them)."""
    strict: set[str] = set()
    loose: set[str] = set()
    todo: list[type] = [msgspec.Struct]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if not cls.__module__.startswith("sampling."):
            continue
        config = getattr(cls, "__struct_config__", None)
        (strict if config is not None and config.forbid_unknown_fields else loose).add(cls.__name__)
    return strict - loose


def document(app: Litestar) -> None:
    """Add roles, problem responses, security and strictness to ``app``'s OpenAPI document."""
    openapi = app.openapi_schema
    components = openapi.components = openapi.components or Components()
    schemas = components.schemas = dict(components.schemas or {})
    schemas[PROBLEM] = _problem_schema()
    strict = _strict_names()
    for name, schema in schemas.items():
        if isinstance(schema, Schema) and name in strict:
            schema.additional_properties = False
    opts = _handlers(app)
    for path, item in (openapi.paths or {}).items():
        for method in _METHODS:
            op: Operation | None = getattr(item, method, None)
            if op is None:
                continue
            roles = opts.get((method, path), {}).get("roles")
            if roles is not None:
                who = ", ".join(f"`{r}`" for r in roles)
                op.description = f"**Roles:** {who}.\n\n{op.description or ''}".strip()
            responses = op.responses = dict(op.responses or {})
            for status in _statuses(openapi, method, path, op, roles):
                responses[str(status)] = _response(status)
