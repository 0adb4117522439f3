"""A page reads the JSON API in-process, as the signed-in caller.

The page and the API then cannot disagree: the same handler, the same roles and
scopes (a grid team's token reads what the API lets it read, a viewer's answer
has no names), the same figures. The request goes through the app's whole ASGI
stack (auth middleware included) without a socket, carrying the caller's own
cookie or Authorization header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import msgspec

if TYPE_CHECKING:
    from litestar import Request


class ApiAnswer(msgspec.Struct, frozen=True):
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def detail(self) -> str:
        if isinstance(self.body, dict):
            return str(self.body.get("detail", ""))
        return ""


async def api_get(request: Request[Any, Any, Any], path: str) -> ApiAnswer:
    """``GET path`` on this app with the caller's credentials; JSON body or text."""
    headers = {"accept": "application/json"}
    for name in ("authorization", "cookie"):
        value = request.headers.get(name)
        if value:
            headers[name] = value
    transport = httpx.ASGITransport(app=request.app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://app.internal") as client:
        resp = await client.get(path, headers=headers)
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    return ApiAnswer(status=resp.status_code, body=body)
