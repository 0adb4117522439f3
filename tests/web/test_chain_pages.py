"""The chain's pages in a real browser: the sealer's desk, the courier, the lab's
intake desk, the results clerk (with held results resolved), and a grid team's
door list. Each saves screenshots under docs/screenshots/."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
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


def boxed_for(live: LiveApi, tubes: list[str], lab: str, box: str) -> None:
    """Seal closed tubes of S1 in ``box`` addressed to ``lab``: a lab reports only the
    tubes it holds."""
    sealer = live.device(f"seal-{box}", "sealer", site="S1")
    send = lambda path, seq, body: live.post(  # noqa: E731
        f"/v1/rounds/r1{path}", sealer, {"op": f"{box}-{seq}", "seq": seq, **body}
    )
    assert send("/boxes", 1, {"box": box}).status_code == 201
    samples = 0
    for n, t in enumerate(tubes, start=2):
        got = send(f"/boxes/{box}/tubes", n, {"tube": t})
        assert got.status_code == 200, got.text
        samples = got.json()["samples"]
    got = send(f"/boxes/{box}/seal", len(tubes) + 2,
               {"tubes": len(tubes), "samples": samples, "lab": lab})  # fmt: skip
    assert got.status_code == 200, got.text


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
        assert live.get("/v1/rounds/r1/courier/boxes", courier).json()[0]["box"] == box
        other_courier = live.device("c2", "courier")
        assert live.get("/v1/rounds/r1/courier/boxes", other_courier).json() == []
        phone.set_viewport_size({"width": 1920, "height": 1080})
        shot(phone, "courier-desk")
    finally:
        other.close()
    view = live.get(f"/v1/rounds/r1/boxes/{box}", sealer).json()
    assert view["state"] == "picked_up" and view["courier"] == "c1"
    assert view["pickup_place"] == "S1 门口"


def send(live: LiveApi, token: str, path: str, **body: Any) -> dict[str, Any]:
    seq = live.next_seq(token)
    got = live.post(f"/v1/rounds/r1{path}", token, {"op": f"o{seq}", "seq": seq, **body})
    assert got.status_code in (200, 201), got.text
    found: dict[str, Any] = got.json()
    return found


def delivered_box(live: LiveApi, scanner: str, n: int, tubes: list[str], lab: str) -> str:
    """A box of ``tubes`` sealed, handed to courier c1 and picked up, addressed to ``lab``."""
    sealer = live.device(f"seal{n}", "sealer", site="S1")
    courier = live.device(f"c{n}", "courier")
    box = codes.make_box(n)
    send(live, sealer, "/boxes", box=box, lab=lab)
    samples = 0
    for t in tubes:
        samples = send(live, sealer, f"/boxes/{box}/tubes", tube=t)["samples"]
    send(live, sealer, f"/boxes/{box}/seal", tubes=len(tubes), samples=samples)
    send(live, sealer, f"/boxes/{box}/handover", courier=f"c{n}")
    send(live, courier, f"/boxes/{box}/pickup", place="S1")
    return box


def test_intake_desk_missing_extra_damaged_and_the_summary_matches_the_api(
    live: LiveApi, page: Page, login: Callable[..., None]
) -> None:
    scanner = sampling_point(live)
    t1 = closed_tube(live, scanner, 21, [1, 2])
    t2 = closed_tube(live, scanner, 22, [3, 4, 5])
    t3 = closed_tube(live, scanner, 23, [6])
    stray = closed_tube(live, scanner, 24, [7, 8])  # never boxed: the extra tube
    elsewhere = closed_tube(live, scanner, 25, [9])
    box = delivered_box(live, scanner, 31, [t1, t2, t3], "L1")
    other = delivered_box(live, scanner, 32, [elsewhere], "L2")
    lab = live.device("lab1", "lab", lab="L1")

    login(page, lab, "/ui/intake")
    # A box for another lab: refused, and the page says where it goes.
    page.fill("#recv-code", other)
    page.click("#recv-btn")
    expect(page.locator(f"{BANNER}.refusal")).to_contain_text("send it on to L2")
    expect(page.locator(f"{BANNER} .headline")).to_contain_text("此箱不是送往本实验室")
    shot(page, "intake-wrong-lab")

    page.fill("#recv-code", box)
    page.click("#recv-btn")
    expect(page.locator("#n-expected")).to_have_text("3")
    expect(page.locator("#n-missing")).to_have_text("3")
    # A second desk scans t1: the list follows live (server-sent events), no click here.
    other_desk = live.device("lab2", "lab", lab="L1")
    send(live, other_desk, f"/boxes/{box}/intake", tube=t1, condition="ok")
    expect(page.locator("#n-scanned")).to_have_text("1", timeout=5000)
    page.select_option("#tube-cond", "damaged")
    page.fill("#tube-code", t2)
    page.press("#tube-code", "Enter")
    expect(page.locator("#n-damaged")).to_have_text("1")
    page.fill("#tube-code", stray)
    page.press("#tube-code", "Enter")
    expect(page.locator("#n-extra")).to_have_text("1")
    expect(page.locator(f"#l-extra tr[data-tube='{stray}']")).to_contain_text("未装箱")
    expect(page.locator("#n-missing")).to_have_text("1")  # t3, not scanned yet
    shot(page, "intake-live")
    page.click("#close-btn")
    expect(page.locator("#summary-card")).to_be_visible()

    api = live.get(f"/v1/rounds/r1/boxes/{box}/discrepancies", lab).json()
    assert [i["tube"] for i in api["missing"]] == [t3]
    assert [i["tube"] for i in api["extra"]] == [stray]
    assert [i["tube"] for i in api["damaged"]] == [t2]
    assert api["residents_affected"] == 1 + 2 + 3
    expect(page.locator("#affected")).to_contain_text(str(api["residents_affected"]))
    shown = page.locator("#summary tbody tr")
    expect(shown).to_have_count(3)
    for kind in ("missing", "extra", "damaged"):
        for issue in api[kind]:
            row = page.locator(f"#summary tr.{kind}[data-tube='{issue['tube']}']")
            expect(row).to_contain_text(str(issue["residents"]))
            expect(row).to_contain_text(" ".join(issue["refs"]))
    shot(page, "intake-summary")


def in_thread(work: Callable[[], Any]) -> Any:
    # Playwright's sync API keeps an event loop running in the test's thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def audit(settings: Settings, kind: str, code: str) -> list[dict[str, Any]]:
    env = {
        "SAMPLING_REDIS_URL": settings.redis_url,
        "SAMPLING_DATA_DIR": str(settings.data_dir),
        "SAMPLING_SECRET": SECRET,
    }
    args = ["audit", kind, code, "--round", "r1", "--json"]
    res = in_thread(lambda: CliRunner().invoke(main, args, env=env))
    assert res.exit_code == 0, res.output
    return [json.loads(x) for x in res.stdout.splitlines() if x.strip()]


def upload(page: Page, name: str, text: str) -> None:
    page.set_input_files(
        "#file", files=[{"name": name, "mimeType": "text/csv", "buffer": text.encode()}]
    )


def counts(page: Page) -> dict[str, int]:
    found = page.locator("#report-counts [data-count]")
    return {
        found.nth(i).get_attribute("data-count") or "": int(
            found.nth(i).locator(".big").inner_text()
        )
        for i in range(found.count())
    }


def test_results_dry_run_then_real_then_a_held_result_resolved_and_audited(
    live: LiveApi, page: Page, login: Callable[..., None], settings: Settings
) -> None:
    scanner = sampling_point(live)
    t1 = closed_tube(live, scanner, 41, [1, 2])
    t2 = closed_tube(live, scanner, 42, [3])
    boxed_for(live, [t1, t2], "L1", codes.make_box(41))
    garbled = t1[:-1] + str((int(t1[-1]) + 1) % 10)
    at = datetime.now(UTC).replace(microsecond=0).isoformat()
    rows = [
        f"{t1},negative,,,L1,{at}",
        f"{t2},positive,22.5,24.1,L1,{at}",
        f"{garbled},negative,,,L1,{at}",  # a misread code: refused
        f"{tube(49)},negative,,,L1,{at}",  # nobody bound it: an orphan
        f"{t1},negative,,,L1,{at}",  # the same again: a duplicate
    ]
    text = "tube,outcome,ct_orf1ab,ct_n,lab,tested_at\n" + "\n".join(rows) + "\n"
    sup = live.device("sup1", "lab", lab="L1", supervisor=True)
    login(page, sup, "/ui/results")
    template = page.request.get("/ui/results/template.csv")
    assert template.ok and template.text().lstrip("\ufeff").startswith("tube,outcome")

    upload(page, "results.csv", text)
    expect(page.locator("#real-btn")).to_be_disabled()
    page.click("#dry-btn")
    expect(page.locator("#report-title")).to_have_text("试运行结果：未保存任何数据")
    dry = counts(page)
    # The dry run sees its own first row: the repeat of t1 is already a duplicate.
    assert dry == {"rows_in": 5, "stored": 2, "duplicate": 1, "held": 0, "orphan": 1,
                   "refused": 1}  # fmt: skip
    assert dry["rows_in"] == sum(v for k, v in dry.items() if k != "rows_in")
    assert live.get("/v1/rounds/r1/results/orphans", sup).json() == []  # nothing stored
    bad = page.locator("#report tr.refused")
    expect(bad).to_have_count(1)
    expect(bad).to_contain_text(garbled)
    shot(page, "results-dry-run")

    page.click("#real-btn")
    expect(page.locator("#report-title")).to_have_text("导入结果")
    real = counts(page)
    assert real["rows_in"] == 5 == sum(v for k, v in real.items() if k != "rows_in")
    assert (real["stored"], real["duplicate"], real["orphan"], real["refused"]) == (2, 1, 1, 1)
    with page.expect_download() as got:
        page.click("#report-csv")
    report = Path(got.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert report[0] == "row,tube,status,reason" and len(report) == 1 + 5
    assert sum(1 for line in report if '"refused"' in line) == 1
    shot(page, "results-imported")

    # A second result for t1 that disagrees: held, then resolved here with a reason.
    upload(
        page,
        "again.csv",
        f"tube,outcome,ct_orf1ab,ct_n,lab,tested_at\n{t1},positive,30,31,L1,{at}\n",
    )
    page.click("#dry-btn")
    expect(page.locator("#real-btn")).to_be_enabled()
    page.click("#real-btn")
    case = page.locator(f".held-case[data-tube='{t1}']")
    expect(case).to_contain_text("阴性")
    expect(case).to_contain_text("阳性")
    shot(page, "results-held")
    case.locator("input[value^='held:']").check()
    case.locator("button").click()
    expect(page.locator(f"{BANNER}.refusal")).to_be_visible()  # no reason: refused
    assert live.get(f"/v1/rounds/r1/results/held/{t1}", sup).status_code == 200
    case.locator("textarea").fill("复检确认阳性 second run confirms")
    case.locator("button").click()
    expect(page.locator(f"{BANNER}.okay")).to_contain_text(t1)
    expect(page.locator("#no-held")).to_be_visible()
    shot(page, "results-held-resolved")

    entries = audit(settings, "tube", t1)
    decision = [e for e in entries if e["kind"] == "result_resolved"]
    assert len(decision) == 1 and decision[0]["device"] == "sup1"
    assert "decision held" in decision[0]["detail"]
    assert "reason 复检确认阳性 second run confirms" in decision[0]["detail"]


def archive_now(settings: Settings) -> None:
    async def drain() -> None:
        redis = from_settings(settings)
        try:
            await archive.drain(redis, "r1", settings.data_dir)
        finally:
            await redis.aclose()
        archive.materialize(settings.data_dir, "r1")

    in_thread(lambda: asyncio.run(drain()))


def test_grid_team_records_outcomes_that_change_coverage_and_the_next_list(
    live: LiveApi,
    page: Page,
    browser: Browser,
    login: Callable[..., None],
    settings: Settings,
    tmp_path: Path,
) -> None:
    from tests.lab.test_door_outcomes import write_register

    write_register(tmp_path / "register.csv", settings)
    live.round()
    live.site("S1", grid="G1")
    live.site("D1", grid="G1")
    scanner = live.device("d1", site="S1")
    assert live.open(scanner, tube(1), capacity=5).status_code == 201
    assert live.scan(scanner, tube(1), resident(1)).status_code == 200
    archive_now(settings)
    team = live.device("g1", "grid", grid="G1", site="D1")
    viewer = live.device("v1", "viewer")

    def g1() -> dict[str, Any]:
        rows = live.get("/v1/rounds/r1/reports/coverage_grid", viewer).json()
        found: dict[str, Any] = next(x for x in rows if x["grid"] == "G1")
        return found

    before = g1()
    assert (before["residents"], before["sampled"]) == (5, 1)

    login(page, team, "/ui/doors")
    households = page.locator("#households .household")
    expect(households).to_have_count(4)  # walking order: 1-1-101 (居民2), 102, 201, 2-1-101
    assert households.first.get_attribute("data-household") == "1-1-101"
    expect(page.locator(".household[data-household='2-1-101']")).to_contain_text("入户采样")
    expect(page.locator(".household[data-household='2-1-101']")).to_contain_text("独居老人")
    shot(page, "doors-desk")

    def record(hh: str, outcome: str) -> None:
        card = page.locator(f"#households .household[data-household='{hh}']")
        card.locator(f"button[data-outcome='{outcome}']").click()
        expect(page.locator(f"{BANNER}.okay")).to_contain_text(hh)

    record("1-1-102", "moved")
    record("1-1-201", "not_home")
    record("1-1-101", "medical")
    home = page.locator("#households .household[data-household='2-1-101']")
    home.locator("input[type=text]").fill(tube(50))
    home.locator("textarea").fill(resident(5))
    home.locator("button[data-outcome='sampled']").click()
    expect(page.locator(f"{BANNER}.okay")).to_contain_text("2-1-101")
    expect(page.locator("#households .household.done")).to_have_count(2)  # moved, sampled
    # A resident sampled elsewhere is refused at the door as at a point.
    again = page.locator("#households .household[data-household='1-1-101']")
    again.locator("input[type=text]").fill(tube(51))
    again.locator("textarea").fill(resident(1))
    again.locator("button[data-outcome='sampled']").click()
    expect(page.locator(f"{BANNER}.refusal")).to_be_visible()
    shot(page, "doors-refusal")
    page.locator(f"{BANNER} .dismiss").click()
    counts = live.get("/v1/rounds/r1/doors/G1/outcomes", team).json()["counts"]
    assert counts == {"moved": 1, "not_home": 1, "medical": 1, "sampled": 1}
    # Resident 1's pool comes back positive: an urgent re-sample order for the grid.
    # (The admin imports it: the tube was never boxed, and a lab device reports only
    # the tubes its lab holds.)
    lab = live.admin
    row = {"tube": tube(1), "outcome": "positive", "ct_orf1ab": 21.0, "ct_n": 23.0,
           "lab": "L1", "tested_at": datetime.now(UTC).isoformat()}  # fmt: skip
    assert live.post("/v1/rounds/r1/results", lab, {"results": [row]}).json()["stored"] == 1

    archive_now(settings)
    after = g1()
    assert (after["residents"], after["sampled"], after["moved"]) == (4, 2, 1)
    assert (after["not_home"], after["medical"]) == (1, 1)
    page.reload()
    expect(households).to_have_count(2)  # moved and sampled households are off the list
    first = page.locator("#households .household").first
    expect(first).to_contain_text("上门采样（医护）")
    expect(first.locator("[data-last]")).to_contain_text("上次：需医护上门")
    # The re-sample orders are on the same page, first, urgent ones marked.
    order = page.locator("#resample .household.urgent[data-household='1-1-101']")
    expect(order).to_contain_text("紧急复采")
    expect(order).to_contain_text("居民1")
    shot(page, "doors-with-resample")
    order.locator("input[type=text]").fill(tube(60))
    order.locator("textarea").fill(resident(1))
    order.locator("button[data-outcome='sampled']").click()
    expect(page.locator(f"{BANNER}.okay")).to_contain_text("1-1-101")
    single = live.get(f"/v1/rounds/r1/tubes/{tube(60)}", live.admin).json()
    assert (single["purpose"], single["capacity"], single["count"]) == ("resample", 1, 1)
    phone = browser.new_context(viewport=PHONE, locale="zh-CN", base_url=live.url)
    try:
        small = phone.new_page()
        login(small, team, "/ui/doors")
        expect(small.locator("#households .household")).to_have_count(2)
        shot(small, "doors-phone")
        # Another grid: refused, on the page and by the API.
        small.goto(f"{live.url}/ui/doors?grid=G2")
        assert "G1" in small.inner_text("main")
        shot(small, "doors-other-grid-refused")
    finally:
        phone.close()
    assert live.get("/v1/rounds/r1/doors/G2", team).status_code == 403
    # English is one click away; the same list, the same outcomes.
    page.goto(f"{live.url}/ui/lang/en?next=/ui/doors")
    expect(page.locator("h1")).to_contain_text("Grid G1: door list")
    expect(page.locator("#households .household [data-last]").first).to_have_text(
        re.compile(r"^Last: medical staff needed \d\d:\d\d$")
    )
    shot(page, "doors-desk-en")
