"""Signing in from a browser; the cookie, CSRF and the layout's language switch."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page

from tests.web.conftest import LiveApi, shot


def test_login_sets_httponly_strict_cookie_never_in_url(
    live: LiveApi, page: Page, login: Callable[..., None], requests_seen: object
) -> None:
    token = live.device("v1", "viewer")
    login(page, token)
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sampling_token"]["httpOnly"] is True
    assert cookies["sampling_token"]["sameSite"] == "Strict"
    assert cookies["sampling_token"]["path"] == "/"
    assert cookies["sampling_csrf"]["httpOnly"] is False
    assert page.evaluate("document.cookie").find(token) == -1
    assert all(token not in u for u in requests_seen.urls)  # type: ignore[attr-defined]
    assert "v1" in page.inner_text("header")


def test_landing_page_without_sign_in_leads_to_login(live: LiveApi, page: Page) -> None:
    page.goto(f"{live.url}/")
    assert page.locator("main a[href='/ui/login']").count() == 1
    assert page.locator("ul.pages").count() == 0
    page.goto(f"{live.url}/ui/rounds/r1?street=a%26b")
    assert "/ui/login?next=/ui/rounds/r1" in page.url


def test_bad_token_stays_on_login_with_reason(live: LiveApi, page: Page) -> None:
    page.goto(f"{live.url}/ui/login")
    page.fill("#token", "nobody.secret")
    page.click("form[action='/ui/login'] button[type=submit]")
    assert "/ui/login" in page.url
    assert "unknown token" in page.inner_text("[role=alert]")
    shot(page, "login")


def test_revoked_token_sends_page_back_to_login(
    live: LiveApi, page: Page, login: Callable[..., None]
) -> None:
    live.round("r1")
    token = live.device("v1", "viewer")
    login(page, token, "/ui/rounds/r1")
    assert page.url.endswith("/ui/rounds/r1")
    resp = live.post("/v1/devices/v1/revoke", live.admin, {})
    assert resp.status_code == 200, resp.text
    page.goto(f"{live.url}/ui/rounds/r1")
    assert "/ui/login" in page.url and "expired=1" in page.url
    assert "重新登录" in page.inner_text("[role=alert]")


def test_api_accepts_cookie_but_unsafe_methods_need_csrf(
    live: LiveApi, page: Page, login: Callable[..., None]
) -> None:
    token = live.device("a1", "admin")
    login(page, token)
    # A GET with the cookie alone works; a POST without the header is refused, with it accepted.
    status = page.evaluate("fetch('/v1/rounds', {credentials: 'same-origin'}).then(r => r.status)")
    assert status == 200
    bare = page.evaluate(
        """fetch('/v1/rounds', {method: 'POST', credentials: 'same-origin',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({id: 'r9', name: 'r9', pool: 10})})
           .then(async r => [r.status, (await r.json()).code])"""
    )
    assert bare == [403, "csrf_failed"]
    made = page.evaluate("api('POST', '/v1/rounds', {id: 'r9', name: 'r9', pool: 10})")
    assert made["id"] == "r9"
    # Nothing was made by the refused call: r9 exists once, made by the helper.
    assert [x["id"] for x in live.get("/v1/rounds", live.admin).json()] == ["r9"]


def test_bearer_needs_no_csrf_and_wrong_csrf_is_refused(live: LiveApi) -> None:
    token = live.device("a1", "admin")
    with httpx.Client(base_url=live.url) as c:
        ok = c.post(
            "/v1/rounds",
            json={"id": "r1", "name": "r1", "pool": 10},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert ok.status_code == 201
        c.cookies.set("sampling_token", token)
        c.cookies.set("sampling_csrf", "right")
        bad = c.post(
            "/v1/rounds",
            json={"id": "r2", "name": "r2", "pool": 10},
            headers={"X-CSRF-Token": "wrong"},
        )
        assert bad.status_code == 403 and bad.json()["code"] == "csrf_failed"
        good = c.post(
            "/v1/rounds",
            json={"id": "r2", "name": "r2", "pool": 10},
            headers={"X-CSRF-Token": "right"},
        )
        assert good.status_code == 201


def test_language_switch_and_sign_out(
    live: LiveApi, page: Page, login: Callable[..., None]
) -> None:
    token = live.device("v1", "viewer")
    login(page, token)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.click("header a.lang")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Sign out" in page.inner_text("header")
    page.click("header form[action='/ui/logout'] button")
    assert "/ui/login" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == "sampling_token"]


pytestmark = pytest.mark.browser
