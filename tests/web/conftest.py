"""Browser-test fixtures: the real app under uvicorn, Debian's chromium via Playwright.

- ``live``: the whole app (API and pages) served by uvicorn in a thread on a free
  port, on the session's embedded Valkey (flushed around each test), with an
  admin token and the same helpers as the ``api`` fixture (``device``, ``round``,
  ``site``, ``open``, ``scan``) speaking real HTTP.
- ``browser``: one chromium for the tests of this package; ``page``: a fresh context per test
  (wall-screen size, Chinese), which records every request the page makes and
  fails the test if one goes to any host but the server (offline-safe).
- ``login(page, token)``: signs the page in through the login form.
- ``shot(page, name)``: a full-page PNG at ``docs/screenshots/NAME.png``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import redis
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from sampling.api.app import create_app
from sampling.settings import Settings
from sampling.store.embedded import free_port
from tests.conftest import Api

T = TypeVar("T")
CHROMIUM = os.environ.get("SAMPLING_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WALL = {"width": 1920, "height": 1080}
PHONE = {"width": 360, "height": 640}


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()`` to completion from a test (Playwright's sync API keeps an event
    loop running in the test's thread, so the coroutine gets a thread of its own)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class LiveServer:
    """uvicorn serving ``create_app(settings)`` in a thread, until :meth:`stop`."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class LiveApi(Api):
    """The ``api`` fixture's helpers over real HTTP to the live server."""

    def __init__(self, server: LiveServer, redis_url: str) -> None:
        self.server = server
        self.url = server.url
        self._redis_url = redis_url
        super().__init__(httpx.Client(base_url=server.url, timeout=30))  # type: ignore[arg-type]

    def _bootstrap_admin(self) -> str:
        from sampling.auth.devices import Devices
        from sampling.auth.models import DeviceIn
        from sampling.store.client import from_settings

        async def make() -> str:
            client = from_settings(Settings(redis_url=self._redis_url))
            try:
                made = await Devices(client).create(DeviceIn(id="admin0", role="admin"))
            finally:
                await client.aclose()
            return made.token

        return run_async(make)


@pytest.fixture
def live(r: redis.Redis, settings: Settings) -> Iterator[LiveApi]:
    server = LiveServer(settings)
    server.start()
    api = LiveApi(server, settings.redis_url)
    try:
        yield api
    finally:
        api.client.close()
        server.stop()


# Package scope, not session: Playwright's sync API keeps an event loop running
# in the main thread while it is started, and tests elsewhere call asyncio.run().
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: run ./dev (it installs Debian's chromium)")
    found = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield found
    found.close()


class Requests:
    """Every URL a page requested, for the offline-safe check."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def foreign(self, origin: str) -> list[str]:
        host = urlsplit(origin).netloc
        return [
            u
            for u in self.urls
            if urlsplit(u).scheme not in ("data", "blob", "about") and urlsplit(u).netloc != host
        ]


@pytest.fixture
def requests_seen() -> Requests:
    return Requests()


@pytest.fixture
def page(browser: Browser, live: LiveApi, requests_seen: Requests) -> Iterator[Page]:
    context = browser.new_context(viewport=WALL, locale="zh-CN", base_url=live.url)
    found = context.new_page()
    found.on("request", lambda req: requests_seen.urls.append(req.url))
    yield found
    context.close()
    # Every page must work on a district network with no internet.
    assert requests_seen.foreign(live.url) == [], "a page asked a host other than the server"


@pytest.fixture
def login(live: LiveApi) -> Callable[[Page, str], None]:
    def sign_in(page: Page, token: str, next_path: str = "/") -> None:
        page.goto(f"{live.url}/ui/login?next={next_path}")
        page.fill("#token", token)
        page.click("form[action='/ui/login'] button[type=submit]")
        page.wait_for_load_state()

    return sign_in


def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of ``page`` (whole, or the viewport) as ``docs/screenshots/NAME.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@pytest.fixture(name="shot")
def shot_fixture() -> Callable[..., Path]:
    return shot


def eventually(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.2) -> Any:
    """``check()``'s first truthy answer within ``timeout`` seconds, else AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: last answer {got!r}")
        time.sleep(every)
