"""/docs: offline Swagger UI, and a document that says roles, errors and strict bodies."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.conftest import Api
from tests.faults.test_authz import endpoints
from tests.web.conftest import LiveApi, shot

PROBLEM = "application/problem+json"


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_operation_has_roles_errors_and_bodies(api: Api) -> None:
    doc = api.client.get("/docs/openapi.json").json()
    roles = {
        (method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", path)): r
        for method, path, r in endpoints(api.client.app)
    }
    ops = _operations(doc)
    assert len([o for o in ops if o[1].startswith("/v1")]) >= 30
    assert not [p for _, p, _ in ops if p.startswith("/ui") or p == "/"]  # pages are not API
    for method, path, op in ops:
        needed = roles[(method, path)]
        responses = op["responses"]
        for status in ["503"] + (["401", "403", "429"] if needed else []):
            assert PROBLEM in responses[status]["content"], (method, path, status)
        if needed:
            listed = re.findall(r"`(\w+)`", op["description"].split("\n")[0])
            assert op["description"].startswith("**Roles:**")
            assert tuple(listed) == tuple(needed), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if method != "get" and needed:
            assert "409" in responses, (method, path)
            assert "requestBody" in op or "parameters" in op or method == "post", (method, path)
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            ref = body["schema"].get("$ref", "")
            schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else body["schema"]
            if "op" in schema.get("properties", {}):
                assert "422" in responses, (method, path)
    assert "Authorization: Bearer" in doc["info"]["description"]
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "code", "detail"}


def test_forbid_unknown_fields_shows_as_no_additional_properties(api: Api) -> None:
    schemas = api.client.get("/docs/openapi.json").json()["components"]["schemas"]
    for name in ("OpenTube", "OpenBox", "SealBox", "DeviceIn", "RoundIn", "Live", "Batch"):
        assert schemas[name]["additionalProperties"] is False, name
    # And the server does refuse them: a documented field too many is a 400.
    api.round()
    resp = api.post("/v1/rounds", api.admin, {"id": "r2", "name": "r2", "pool": 10, "x": 1})
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith(PROBLEM)


@pytest.mark.browser
def test_docs_render_offline(live: LiveApi, page: Page) -> None:
    page.goto(f"{live.url}/docs")
    page.wait_for_selector("#operations-binding-openTube", timeout=20_000)
    assert "Roles:" in page.content() or page.locator(".opblock").count() > 30
    page.click("#operations-binding-openTube .opblock-summary")
    page.wait_for_selector("#operations-binding-openTube .responses-table")
    text = page.inner_text("#operations-binding-openTube")
    assert "scanner" in text and "422" in text and "application/problem+json" in text
    page.locator("#operations-binding-openTube").scroll_into_view_if_needed()
    shot(page, "docs", full_page=False)
    # The page fixture then checks that no request left the server.
