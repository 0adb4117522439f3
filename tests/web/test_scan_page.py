"""The handheld page in a real browser: online, offline, two handhelds, slips, photos.

Every test ends by comparing the server's state with what the page recorded in
its IndexedDB (``server_matches``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser

from sampling import codes
from sampling.binding import keys
from sampling.settings import Settings
from tests.conftest import resident, tube
from tests.web.conftest import LiveApi, Requests, eventually, shot
from tests.web.handheld import Handheld, server_matches

pytestmark = pytest.mark.browser


@pytest.fixture
def handhelds(
    browser: Browser, live: LiveApi, requests_seen: Requests
) -> Iterator[Callable[[str], Handheld]]:
    """Paired phone-sized handhelds at site S1 in round r1 (pool 10)."""
    live.round("r1", pool=10)
    live.site("S1")
    made: list[Handheld] = []

    def make(device_id: str) -> Handheld:
        live.device(device_id, site="S1")
        h = Handheld(browser, live.url, requests_seen.urls)
        h.pair(live, device_id)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
    assert requests_seen.foreign(live.url) == [], "the page asked a host other than the server"


def test_full_tube_online(
    handhelds: Callable[[str], Handheld], r: redis.Redis, settings: Settings
) -> None:
    h = handhelds("h1")
    page = h.page
    assert "请扫描试管条码" in page.inner_text("#prompt")
    page.click("button.pool[data-pool='5']")
    h.scan(tube(1), "0/5")
    assert "请扫描居民码" in page.inner_text("#prompt")
    for n in range(4):
        h.scan(resident(n), f"{n + 1}/5")
    shot(page, "handheld-scan-4of5")
    # Undo the last, scan it again, then the fifth closes the tube by itself.
    page.click("#undo")
    eventually(lambda: page.inner_text("#count") == "3/5")
    h.scan(resident(3), "4/5")
    h.scan(resident(4), "5/5")
    assert "已满" in page.inner_text("#notice")
    h.drained()
    assert page.inner_text("#last-upload") != "尚无"
    # The same resident again, into a new tube: refused with where and when.
    h.scan(tube(2), "0/5")
    h.scan(resident(2), "1/5")
    eventually(lambda: page.is_visible("#refusal"))
    message = page.inner_text("#refusal .r-msg")
    assert "already sampled" in message and tube(1) in message and "Point S1" in message
    assert "不要重复采样" in page.inner_text("#refusal .r-next")
    eventually(lambda: page.inner_text("#count") == "0/5")
    assert page.inner_text("#attention-count") == "1"
    shot(page, "handheld-refusal")
    ops = h.ops()
    assert [o["kind"] for o in ops] == ["open"] + ["scan"] * 4 + ["undo"] + ["scan"] * 2 + [
        "open",
        "scan",
    ]
    assert [o["seq"] for o in ops] == list(range(1, 11))
    assert server_matches(r, settings, ops) == 5
    rec_tube = r.get(keys.tube("r1", tube(1)))
    assert rec_tube is not None and rec_tube[1] == 1  # closed when full
