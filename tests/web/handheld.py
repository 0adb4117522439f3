"""Driving the handheld page like a sampler, and checking the server against it."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import redis
from playwright.sync_api import Browser, BrowserContext, Page

from sampling.binding import keys
from sampling.binding.tube import TubeRecord
from sampling.privacy import ResidentHasher
from sampling.settings import Settings
from tests.web.conftest import PHONE, LiveApi, eventually


class Handheld:
    """One handheld: a phone-sized browser context paired as a scanner device."""

    def __init__(self, browser: Browser, url: str, seen: list[str]) -> None:
        self.url = url
        self.context: BrowserContext = browser.new_context(
            viewport=PHONE, locale="zh-CN", base_url=url, has_touch=True
        )
        self.page: Page = self.context.new_page()
        self.page.on("request", lambda req: seen.append(req.url))

    def pair(self, live: LiveApi, device_id: str) -> None:
        made = live.post(f"/v1/devices/{device_id}/pairing", live.admin, {})
        assert made.status_code == 201, made.text
        self.page.goto(f"{self.url}/ui/scan/pair")
        self.page.fill("#code", made.json()["code"])
        self.page.click("form[action='/ui/scan/pair'] button[type=submit]")
        self.ready()

    def ready(self) -> None:
        self.page.wait_for_selector("body[data-ready='1']", timeout=15_000)

    def type(self, code: str) -> None:
        """What a hardware scanner does: the code's keys, then Enter, into the focused field."""
        assert self.page.evaluate("document.activeElement.id") == "code"
        self.page.keyboard.type(code)
        self.page.keyboard.press("Enter")

    def scan(self, code: str, count: str | None = None) -> None:
        before = self.page.evaluate("window.lastShown || 0")
        self.type(code)
        self.page.wait_for_function(f"(window.lastShown || 0) > {before}")
        if count is not None:
            assert self.page.inner_text("#count") == count

    def waiting(self) -> int:
        return int(self.page.inner_text("#waiting"))

    def drained(self, timeout: float = 30) -> None:
        eventually(lambda: self.waiting() == 0, timeout)

    def ops(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.page.evaluate("handheld.ops()")
        return sorted(found, key=lambda o: (o["round"], o["seq"]))

    def offline(self, yes: bool = True) -> None:
        self.context.set_offline(yes)
        if not yes:
            # The page's "online" event starts the upload; nudge it in case it raced.
            self.page.evaluate("handheld.flush()")

    def close(self) -> None:
        self.context.close()


def server_matches(
    r: redis.Redis, settings: Settings, ops: list[dict[str, Any]], *, alone: bool = True
) -> int:
    """Every op the page saw accepted is in Redis with its device time; returns scans bound.

    The page's accepted scans minus its undos, per tube and in order, must be
    the tube record's members, each with the device's time of its scan.
    """
    hasher = ResidentHasher(settings.secret())
    want: dict[tuple[str, str], list[tuple[bytes, int]]] = defaultdict(list)
    for o in ops:
        assert o["state"] in ("done", "refused", "resolved"), o
        if o["state"] != "done":
            continue
        key = (o["round"], o["tube"])
        if o["kind"] == "open":
            want[key]
        elif o["kind"] == "scan":
            want[key].append((hasher.digest(o["resident"]), int(o["at"])))
        elif o["kind"] == "undo":
            h = hasher.digest(o["resident"])
            assert want[key] and want[key][-1][0] == h
            want[key].pop()
    bound = 0
    for (round_id, tube), members in want.items():
        raw = r.get(keys.tube(round_id, tube))
        assert raw is not None, f"tube {tube} not on the server"
        rec = TubeRecord(raw)
        assert rec.members == members, tube
        bound += len(members)
    if alone:  # the only device in its rounds: the round's counter agrees too
        rounds = {k[0] for k in want}
        assert sum(int(r.hget(keys.count(rid), "bound") or 0) for rid in rounds) == bound
    return bound


def now() -> float:
    return time.time()
