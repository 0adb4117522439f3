"""The command centre's dashboard in a real browser, against the real app."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Page

from sampling import codes
from sampling.boxing import keys as xkeys
from sampling.settings import Settings
from tests.web import world as w
from tests.web.conftest import PHONE, LiveApi, eventually, shot

pytestmark = pytest.mark.browser


def digits(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def live_doc(live: LiveApi, token: str) -> dict[str, Any]:
    resp = live.get("/v1/rounds/r1/live", token)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def figure(page: Page, name: str) -> str:
    return page.inner_text(f"[data-figure={name}]")


@pytest.fixture
def world(live: LiveApi, settings: Settings, tmp_path: Path) -> w.World:
    return w.build(live, settings, tmp_path)


def test_figures_equal_the_api_and_coverage_drills_down(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None]
) -> None:
    viewer = live.device("viewer1", "viewer")
    login(page, viewer, "/ui/rounds/r1")
    doc = live_doc(live, viewer)
    assert doc["residents"]["sampled"] == len(world.sampled) > 0
    assert digits(figure(page, "expected")) == doc["residents"]["expected"] > 0
    assert digits(figure(page, "sampled")) == doc["residents"]["sampled"]
    assert figure(page, "coverage") == f"{doc['residents']['coverage']:.1f}%"
    assert digits(figure(page, "positive_pools")) == doc["positives"]["pools"]
    assert digits(figure(page, "alarms")) == len(doc["alarms"])
    for stage, n in doc["tubes"].items():
        assert digits(page.inner_text(f"[data-stage={stage}] .n")) == n, stage
    # Streets first, then a street's communities, then a community's grids.
    streets = {r["name"]: r for r in doc["coverage"] if r["level"] == "street"}
    shown = page.locator("table.coverage[data-level=street] tbody tr")
    assert sorted(shown.evaluate_all("rows => rows.map(r => r.dataset.name)")) == sorted(streets)
    for name, row in streets.items():
        cell = page.locator(f"table.coverage tr[data-name='{name}'] .cov").inner_text()
        assert cell == f"{row['coverage']:.1f}%"
    street = sorted(streets)[0]
    page.click(f"table.coverage tr[data-name='{street}'] a")
    page.wait_for_selector("table.coverage[data-level=community]")
    communities = [
        r for r in doc["coverage"] if r["level"] == "community" and r["parent"] == street
    ]
    assert page.locator("table.coverage tbody tr").count() == len(communities) > 0
    community = communities[0]["name"]
    page.click(f"table.coverage tr[data-name='{community}'] a")
    page.wait_for_selector("table.coverage[data-level=grid]")
    grids = [r for r in doc["coverage"] if r["level"] == "grid" and r["parent"] == community]
    assert page.locator("table.coverage tbody tr").count() == len(grids) > 0
    # Each grid's door list downloads from the API, with the page's cookie.
    grid = grids[0]["name"]
    with page.expect_download() as got:
        page.click(f"table.coverage tr[data-name='{grid}'] a:text('CSV')")
    body = Path(got.value.path()).read_text(encoding="utf-8-sig")
    assert body.splitlines()[0].startswith("grid,")
    assert ",name," not in body.splitlines()[0]  # a viewer's list: no names, no phones
    for fmt, magic in (("pdf", b"%PDF"), ("xlsx", b"PK")):
        with page.expect_download() as got:
            page.click(f"table.coverage tr[data-name='{grid}'] a:text('{fmt.upper()}')")
        assert Path(got.value.path()).read_bytes().startswith(magic), fmt
    page.goto(f"{live.url}/ui/rounds/r1")
    page.wait_for_timeout(600)  # the chart draws after the scripts load
    shot(page, "dashboard")
    page.set_viewport_size(PHONE)
    page.reload()
    page.wait_for_timeout(600)
    shot(page, "dashboard-phone")


def test_scans_appear_without_reload_within_10s(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None]
) -> None:
    viewer = live.device("viewer1", "viewer")
    login(page, viewer, "/ui/rounds/r1")
    before = digits(figure(page, "sampled"))
    page.evaluate("window.__same_page = true")
    grid = sorted(world.scanners)[-1]  # the grid sampled least
    sampled = {p.code for p in world.sampled}
    fresh = [
        p for p in world.district.residents
        if p.grid == grid and p.code not in sampled and not p.vacant and not p.away
        and not p.risk_flags
    ][:7]  # fmt: skip
    assert len(fresh) == 7
    started = time.monotonic()
    wall_started = time.time()
    w.scan_into_tubes(live, world, world.scanners[grid], fresh)
    eventually(lambda: digits(figure(page, "sampled")) == before + 7, timeout=10)
    assert time.monotonic() - started < 10
    assert page.evaluate("window.__same_page") is True  # no reload happened
    # The chart survived the swaps (hx-preserve) and was fed this minute's scans.
    assert page.locator("#chart .uplot").count() == 1
    minutes, counts = page.evaluate("JSON.parse(document.getElementById('spm-data').textContent)")
    chart = dict(zip(minutes, counts, strict=True))
    doc = {m["minute"]: m["scans"] for m in live_doc(live, viewer)["scans_per_minute"]}
    # The scans may straddle a minute boundary, and the document may be read in
    # the next minute: compare the minutes both hold, and count those since the start.
    since = int(wall_started) // 60 * 60
    assert all(chart[m] == doc[m] for m in chart.keys() & doc.keys() if m >= since)
    assert sum(n for m, n in chart.items() if m >= since) >= 7
    assert (
        digits(page.inner_text("[data-stage=closed_unboxed] .n"))
        == live_doc(live, viewer)["tubes"]["closed_unboxed"]
    )


def test_overdue_box_shows_in_alarms_with_its_timeline(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None], r: redis.Redis
) -> None:
    grid = sorted(world.scanners)[0]
    site = next(s.id for s in world.district.sites if s.grid == grid)
    sealer = live.device("seal-1", "sealer", site=site)
    box = codes.make_box(4242)
    seq = iter(range(1, 100))

    def send(path: str, body: dict[str, Any]) -> None:
        n = next(seq)
        resp = live.post(f"/v1/rounds/r1{path}", sealer, {"op": f"b{n}", "seq": n, **body})
        assert resp.status_code in (200, 201), resp.text

    send("/boxes", {"box": box})
    send(f"/boxes/{box}/tubes", {"tube": world.tubes[0]})
    send(f"/boxes/{box}/seal", {"tubes": 1, "samples": 10, "lab": "LA"})
    # The data says the box was sealed two hours ago and nobody picked it up.
    r.zadd(xkeys.due("r1", "sealed"), {box: (time.time() - 7200) * 1000})
    viewer = live.device("viewer1", "viewer")
    login(page, viewer, "/ui/rounds/r1")
    alarm = page.locator(f"li[data-alarm=overdue_box][data-subject='{box}']")
    assert alarm.count() == 1
    assert "2 小时" in alarm.inner_text()
    assert digits(page.inner_text("[data-overdue=sealed] td.num")) == 1
    alarm.locator("a").click()
    page.wait_for_url(f"**/ui/rounds/r1/timeline/{box}")
    events = page.locator("table.timeline tr[data-event]").evaluate_all(
        "rows => rows.map(r => r.dataset.event)"
    )
    assert events == ["opened", "sealed"]
    shot(page, "timeline")


def test_grid_token_gets_its_grid_only(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None]
) -> None:
    mine, other = sorted(world.scanners)[:2]
    team = live.device("grid-team", "grid", grid=mine)
    login(page, team)
    # The landing page offers the grid's page, not the district's dashboard.
    assert page.locator(f"a[href='/ui/rounds/r1/grids/{mine}']").count() == 1
    assert page.locator("a[href='/ui/rounds/r1']").count() == 0
    page.goto(f"{live.url}/ui/rounds/r1/grids/{mine}")
    listed = digits(page.inner_text("[data-figure=to_visit]"))
    doors = live.get(f"/v1/rounds/r1/doors/{mine}", team).json()
    assert listed == len(doors) > 0
    names = page.locator("table.doors tbody tr").count()
    assert names == len(doors)
    assert doors[0]["name"] in page.inner_text("table.doors")  # the team knocks on doors
    shot(page, "grid")
    for path in ("/ui/rounds/r1", f"/ui/rounds/r1/grids/{other}", "/ui/rounds/r1/events"):
        resp = page.goto(f"{live.url}{path}")
        assert resp is not None and resp.status == 403, path
    status = page.evaluate("fetch('/v1/rounds/r1/live').then(r => r.status)")
    assert status == 403


def test_viewer_pages_hold_no_name_or_phone(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None]
) -> None:
    viewer = live.device("viewer1", "viewer")
    login(page, viewer, "/ui/rounds/r1")
    grids = sorted(world.scanners)
    html = [page.content()]
    for grid in grids:
        page.goto(f"{live.url}/ui/rounds/r1/grids/{grid}")
        assert digits(page.inner_text("[data-figure=to_visit]")) > 0
        html.append(page.content())
    # Drill down to every street's communities as well.
    page.goto(f"{live.url}/ui/rounds/r1")
    for a in page.locator("table.coverage a").evaluate_all("xs => xs.map(a => a.href)"):
        page.goto(a)
        html.append(page.content())
    text = "\n".join(html)
    for person in world.district.residents:
        assert person.name not in text, person.name
        assert person.phone not in text, person.phone


def test_scanner_is_not_shown_the_dashboard(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None]
) -> None:
    scanner = next(iter(world.scanners.values()))
    login(page, scanner)
    assert page.locator("a[href='/ui/rounds/r1']").count() == 0
    resp = page.goto(f"{live.url}/ui/rounds/r1")
    assert resp is not None and resp.status == 403
    assert "scanner" in page.inner_text("main")
    assert "退出登录" in page.inner_text("header")  # still signed in, and says so
    shot(page, "forbidden")


def test_revoked_token_sends_the_open_dashboard_to_login(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None]
) -> None:
    viewer = live.device("viewer1", "viewer")
    login(page, viewer, "/ui/rounds/r1")
    assert page.url.endswith("/ui/rounds/r1")
    assert live.post("/v1/devices/viewer1/revoke", live.admin, {}).status_code == 200
    page.wait_for_url("**/ui/login?**", timeout=10_000)
    assert "expired=1" in page.url


def test_english_dashboard_and_landing_links(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None]
) -> None:
    live.round("r2")
    admin = live.device("admin1", "admin")
    login(page, admin)
    hrefs = page.locator("ul.pages a").evaluate_all("xs => xs.map(a => a.getAttribute('href'))")
    assert {"/ui/rounds/r1", "/ui/rounds/r2"} <= set(hrefs)
    shot(page, "home")
    page.click("a[href='/ui/rounds/r1']")
    page.click("header a.lang")
    assert page.url.endswith("/ui/rounds/r1")
    assert page.inner_text("h1") == "Dashboard · round r1"
    assert "Residents expected" in page.inner_text("main")
    shot(page, "dashboard-en")


def test_device_with_a_sequence_gap_links_to_its_page(
    live: LiveApi, world: w.World, page: Page, login: Callable[..., None]
) -> None:
    grid = sorted(world.scanners)[-1]
    site = next(s.id for s in world.district.sites if s.grid == grid)
    token = live.device("hh-gap", "scanner", site=site)
    tube = codes.make_tube(777_001)
    opened = live.post("/v1/rounds/r1/tubes", token, {"op": "g1", "seq": 1, "tube": tube})
    assert opened.status_code == 201, opened.text
    sampled = {p.code for p in world.sampled}
    person = next(
        p for p in world.district.residents
        if p.grid == grid and p.code not in sampled and not p.vacant and not p.away
        and not p.risk_flags
    )  # fmt: skip
    # Seq 2 and 3 never arrive (a handheld that lost them): a gap of two.
    scanned = live.post(
        f"/v1/rounds/r1/tubes/{tube}/scans", token, {"op": "g4", "seq": 4, "resident": person.code}
    )
    assert scanned.status_code == 200, scanned.text
    viewer = live.device("viewer1", "viewer")
    login(page, viewer, "/ui/rounds/r1")
    gaps = live_doc(live, viewer)["devices"]["gaps"]
    assert {"device": "hh-gap", "site": site, "missing": 2} in gaps
    alarm = page.locator("li[data-alarm=device_gap][data-subject=hh-gap]")
    alarm.locator("a").click()
    page.wait_for_url("**/ui/rounds/r1/devices/hh-gap")
    assert "缺失 2 个序号" in page.inner_text("tr[data-device=gap]")
    shot(page, "device")
