"""The chain's pages in a real browser: the sealer's desk, the courier, the lab's
intake desk, the results clerk (with held results resolved), and a grid team's
door list. Each saves screenshots under docs/screenshots/."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, Page, expect

from sampling import archive, codes
from sampling.cli import main
from sampling.settings import Settings
from sampling.store.client import from_settings
from tests.conftest import SECRET, resident, tube
from tests.web.conftest import PHONE, LiveApi, shot

pytestmark = pytest.mark.browser

BANNER = "#banner"


def closed_tube(live: LiveApi, token: str, n: int, people: list[int], capacity: int = 5) -> str:
    code = tube(n)
    assert live.open(token, code, capacity=capacity).status_code == 201
    for p in people:
        got = live.scan(token, code, resident(p))
        assert got.status_code == 200, got.text
    if len(people) < capacity:
        seq = live.next_seq(token)
        got = live.post(f"/v1/rounds/r1/tubes/{code}/close", token, {"op": f"c{seq}", "seq": seq})
        assert got.status_code == 200, got.text
    return code


def sampling_point(live: LiveApi) -> str:
    live.round()
    live.site("S1")
    return live.device("d1", site="S1")


def test_sealer_refused_on_a_miscount_then_seals_and_hands_over_to_the_courier(
    live: LiveApi, page: Page, browser: Browser, login: Callable[..., None]
) -> None:
    scanner = sampling_point(live)
    t1 = closed_tube(live, scanner, 1, [1, 2, 3])
    t2 = closed_tube(live, scanner, 2, [4, 5])
    still_open = tube(3)
    assert live.open(scanner, still_open).status_code == 201
    assert live.scan(scanner, still_open, resident(6)).status_code == 200
    sealer = live.device("seal1", "sealer", site="S1")
    courier = live.device("c1", "courier")
    box = codes.make_box(11)

    login(page, sealer, "/ui/box")
    page.fill("#box-code", box)
    page.fill("#box-lab", "L1")
    page.click("#open-btn")
    expect(page.locator("#cur-box")).to_have_text(box)
    # An open tube is refused on the spot, in red, saying why.
    page.fill("#tube-code", still_open)
    page.press("#tube-code", "Enter")
    expect(page.locator(f"{BANNER}.refusal")).to_contain_text(still_open)
    expect(page.locator(f"{BANNER} .headline")).to_contain_text("试管尚未封管")
    shot(page, "sealer-open-tube-refused")
    for t in (t1, t2):
        page.fill("#tube-code", t)
        page.press("#tube-code", "Enter")
        expect(page.locator(f"#tube-table tr[data-tube='{t}']")).to_be_visible()
    expect(page.locator("#cur-tubes")).to_have_text("2")
    expect(page.locator("#cur-samples")).to_have_text("5")
    # A miscount: refused, the banner says exactly what disagrees.
    page.fill("#count-tubes", "3")
    page.fill("#count-samples", "5")
    page.click("#seal-btn")
    banner = page.locator(f"{BANNER}.refusal")
    expect(banner).to_contain_text("Counted 3 tubes, but 2 were scanned")
    expect(page.locator(f"{BANNER} .headline")).to_contain_text("管数不符")
    shot(page, "sealer-miscount-refused")
    assert live.get(f"/v1/rounds/r1/boxes/{box}", sealer).json()["state"] == "open"
    page.fill("#count-tubes", "2")
    page.click("#seal-btn")
    expect(page.locator("#cur-state")).to_have_text("已封箱")
    assert live.get(f"/v1/rounds/r1/boxes/{box}", sealer).json()["state"] == "sealed"
    pdf = page.request.get(page.locator("#manifest-link").get_attribute("href") or "")
    assert pdf.ok and pdf.body().startswith(b"%PDF")

    # The two-party handover: the sealer names the courier and shows the box's code...
    page.fill("#courier-id", "c1")
    page.click("#hand-btn")
    expect(page.locator(f"{BANNER}.okay")).to_contain_text("c1")
    expect(page.locator("#box-barcode")).to_have_attribute("alt", box)
    assert page.locator("#box-barcode").evaluate("img => img.naturalWidth") > 100
    shot(page, "sealer-sealed-handed-over")

    # ... and the courier, on another device (a second browser context), scans it.
    other = browser.new_context(viewport=PHONE, locale="zh-CN", base_url=live.url)
    try:
        phone = other.new_page()
        login(phone, courier, "/ui/courier")
        row = phone.locator(f"#mine tr[data-box='{box}']")
        expect(row).to_contain_text("已交接")
        phone.fill("#pick-code", box)
        phone.fill("#pick-place", "S1 门口")
        phone.click("#pick-btn")
        expect(row).to_contain_text("转运中")
        shot(phone, "courier-phone")
        # A box handed to someone else is not on this courier's list.
        assert live.get(f"/v1/rounds/r1/courier/boxes", courier).json()[0]["box"] == box
        other_courier = live.device("c2", "courier")
        assert live.get("/v1/rounds/r1/courier/boxes", other_courier).json() == []
        phone.set_viewport_size({"width": 1920, "height": 1080})
        shot(phone, "courier-desk")
    finally:
        other.close()
    view = live.get(f"/v1/rounds/r1/boxes/{box}", sealer).json()
    assert view["state"] == "picked_up" and view["courier"] == "c1"
    assert view["pickup_place"] == "S1 门口"
