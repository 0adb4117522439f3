"""The handheld page in a real browser: online, offline, two handhelds, slips, photos.

Every test ends by comparing the server's state with what the page recorded in
its IndexedDB (``server_matches``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, Page, Playwright

from sampling import codes
from sampling.binding import keys
from sampling.scan import typed
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
    # Shown as 1/5 until the server's refusal comes back, which may be before
    # the count can be read: only the end state (0/5, below) is certain.
    h.scan(resident(2))
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
    # English on the header's switch; the tube in hand and the list stay.
    page.click("header a.lang")
    h.ready()
    assert "Scan the resident" in page.inner_text("#prompt")
    assert page.inner_text("#count") == "0/5"
    assert "Needs attention" in page.inner_text("#attention-box")
    shot(page, "handheld-scan-en")


def _sw_ready(h: Handheld) -> None:
    h.page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15_000)


def test_offline_three_tubes_reload_then_drain(
    handhelds: Callable[[str], Handheld], r: redis.Redis, settings: Settings
) -> None:
    h = handhelds("h1")
    page = h.page
    _sw_ready(h)
    h.offline()
    eventually(lambda: "离线" in page.inner_text("#net"))
    for t in range(3):
        h.scan(tube(10 + t), "0/10")
        for n in range(10 if t < 2 else 5):
            h.scan(resident(100 + 10 * t + n))
    assert page.inner_text("#count") == "5/10"
    page.click("#close")
    eventually(lambda: h.waiting() == 3 + 25 + 1)
    shot(page, "handheld-offline-queue")
    before = h.ops()

    # Reloaded with no network: the service worker serves the page; the queue is intact.
    response = page.reload()
    assert response is not None and response.from_service_worker
    h.ready()
    assert h.waiting() == 29
    assert h.ops() == before
    assert page.inner_text("#count") == "5/10"
    assert r.get(keys.tube("r1", tube(10))) is None  # nothing reached the server

    h.offline(False)
    h.drained()
    ops = h.ops()
    assert all(o["state"] == "done" for o in ops), [o for o in ops if o["state"] != "done"]
    assert server_matches(r, settings, ops) == 25
    # Each scan bound exactly once, with the device's time of the scan.
    scans = [e for _, e in r.xrange(keys.journal("r1")) if e[b"k"] == b"scan"]
    assert len(scans) == 25
    page_times = sorted(int(o["at"] * 1000) for o in ops if o["kind"] == "scan")
    assert sorted(int(e[b"at"]) for e in scans) == page_times
    assert all(o["sentAt"] > o["at"] for o in ops)
    shot(page, "handheld-drained")


def test_same_resident_on_two_offline_handhelds(
    handhelds: Callable[[str], Handheld], r: redis.Redis, settings: Settings
) -> None:
    a, b = handhelds("h1"), handhelds("h2")
    for h, t in ((a, tube(1)), (b, tube(2))):
        h.offline()
        h.scan(t, "0/10")
        h.scan(resident(7), "1/10")
    a.offline(False)
    a.drained()
    b.offline(False)
    b.drained()
    page = b.page
    eventually(lambda: page.inner_text("#attention-count") == "1")
    message = page.inner_text("#attention .a-msg")
    scanned_at = next(o["at"] for o in a.ops() if o["kind"] == "scan")
    from sampling import localtime

    assert f"in tube {tube(1)} at Point S1" in message
    assert f"at {localtime.hm(scanned_at)}" in message
    assert "不要重复采样" in page.inner_text("#attention .a-next")
    eventually(lambda: page.inner_text("#count") == "0/10")
    shot(page, "handheld-two-devices-refusal")
    assert server_matches(r, settings, a.ops(), alone=False) == 1
    assert server_matches(r, settings, b.ops(), alone=False) == 0
    assert r.hget(keys.count("r1"), "bound") == b"1"
    # The sampler works through the list: done, and it is gone.
    page.click("#attention button")
    eventually(lambda: page.is_hidden("#attention-box"))


def test_typed_code_with_one_wrong_digit(
    handhelds: Callable[[str], Handheld], r: redis.Redis, settings: Settings
) -> None:
    h = handhelds("h1")
    page = h.page
    h.scan(tube(1), "0/10")
    right = resident(42)
    wrong = right[:5] + str((int(right[5]) + 1) % 10) + right[6:]
    assert not codes.is_valid(wrong)
    h.type(wrong)
    page.wait_for_selector("#choices:not([hidden])")
    offered = page.locator("#choices .choice").all_inner_texts()
    assert right in offered
    assert offered == list(typed.candidates(wrong))  # the service's candidates
    assert page.inner_text("#count") == "0/10"  # nothing was sent
    shot(page, "handheld-typed-candidates")
    page.click(f"#choices .choice:text-is('{right}')")
    eventually(lambda: page.inner_text("#count") == "1/10")
    # Offline, the page computes the same candidates itself.
    h.offline()
    wrong2 = resident(43)[:-1] + ("0" if resident(43)[-1] != "0" else "1")
    h.type(wrong2)
    page.wait_for_selector("#choices:not([hidden])")
    assert page.locator("#choices .choice").all_inner_texts() == list(typed.candidates(wrong2))
    h.offline(False)
    h.drained()
    assert server_matches(r, settings, h.ops()) == 1


def _decodable_glare(kind: codes.CodeKind, text: str, tmp: Path, frames: int = 1) -> list[Path]:
    """Glared photos of ``text`` the service can read (the first of a few seeds)."""
    import cv2
    import numpy as np

    from sampling.scan import frames as multi
    from sampling.scan import pipeline, synth

    for seed in range(20):
        rng = np.random.default_rng(seed)
        if frames == 1:
            shots = [synth.photo(text, kind, "glare_medium", rng)]
            read = pipeline.decode(shots[0])
        else:
            shots = synth.frames(text, kind, "glare_strong", frames, rng)
            read = multi.decode_frames(shots)
        if any(c.valid and c.text == text for c in read.codes):
            paths = []
            for i, img in enumerate(shots):
                path = tmp / f"photo-{seed}-{i}.jpg"
                cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
                paths.append(path)
            return paths
    raise AssertionError("no decodable glared photo in 20 seeds")


def test_glared_photo_through_the_camera_path(
    handhelds: Callable[[str], Handheld], r: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    h = handhelds("h1")
    page = h.page
    h.scan(tube(1), "0/10")
    who = resident(5)
    page.set_input_files(
        "#photo", [str(p) for p in _decodable_glare(codes.CodeKind.RESIDENT, who, tmp_path)]
    )
    page.wait_for_selector("#choices:not([hidden])", timeout=30_000)
    assert who in page.inner_text("#choices")
    shot(page, "handheld-photo-confirm")
    page.click("#choices .choice.confirm")
    eventually(lambda: page.inner_text("#count") == "1/10")
    # Several frames of one label: decoded together.
    who2 = resident(6)
    files = _decodable_glare(codes.CodeKind.RESIDENT, who2, tmp_path, frames=3)
    page.set_input_files("#photo", [str(p) for p in files])
    page.wait_for_selector(f"#choices:not([hidden]):has-text('{who2}')", timeout=30_000)
    page.click("#choices .choice.confirm")
    eventually(lambda: page.inner_text("#count") == "2/10")
    h.drained()
    assert server_matches(r, settings, h.ops()) == 2


def test_admin_pairs_a_handheld_by_qr_code(
    browser: Browser,
    live: LiveApi,
    page: Page,
    login: Callable[..., None],
    r: redis.Redis,
    requests_seen: Requests,
) -> None:
    live.site("S1")
    live.device("h9", site="S1")
    login(page, live.admin, "/ui/pair")
    page.select_option("#device", "h9")
    page.click("text=生成配对码")
    page.wait_for_selector("#pair-code")
    code = page.inner_text("#pair-code")
    assert page.locator(".qr svg").count() == 1
    shot(page, "pair-admin")
    # The QR code on the screen reads back as the code (what the handheld's scanner types).
    import cv2
    import numpy as np

    from sampling.scan import pipeline

    pixels = cv2.imdecode(
        np.frombuffer(page.locator(".qr").screenshot(), np.uint8), cv2.IMREAD_GRAYSCALE
    )
    assert code in [c.text for c in pipeline.decode(pixels).codes]
    # The code is kept hashed, never as text.
    assert all(code.replace("-", "") not in k.decode() for k in r.keys("*"))

    h = Handheld(browser, live.url, requests_seen.urls)
    try:
        h.page.goto(f"{live.url}/ui/scan")  # not signed in: sent to pairing
        assert h.page.url.endswith("/ui/scan/pair")
        h.page.fill("#code", "ABCDE-FGHJK")
        h.page.click("form[action='/ui/scan/pair'] button[type=submit]")
        assert "配对失败" in h.page.inner_text("[role=alert]")
        shot(h.page, "handheld-pair-failed")
        h.page.fill("#code", code)
        h.page.click("form[action='/ui/scan/pair'] button[type=submit]")
        h.ready()
        config = "JSON.parse(document.getElementById('scan-config').textContent)"
        assert h.page.evaluate(config)["device"] == "h9"
        token = next(c for c in h.context.cookies() if c["name"] == "sampling_token")
        assert token["httpOnly"] and token["value"].startswith("h9.")
        assert all(token["value"] not in u for u in requests_seen.urls)
        assert h.page.evaluate("document.cookie").find(token["value"]) == -1
        # Used once: a second handheld cannot pair with it.
        other = Handheld(browser, live.url, requests_seen.urls)
        other.page.goto(f"{live.url}/ui/scan/pair")
        other.page.fill("#code", code)
        other.page.click("form[action='/ui/scan/pair'] button[type=submit]")
        assert "/ui/scan/pair" in other.page.url
        other.close()
    finally:
        h.close()


def test_sequence_numbers_survive_a_new_profile(
    handhelds: Callable[[str], Handheld],
    browser: Browser,
    live: LiveApi,
    requests_seen: Requests,
    r: redis.Redis,
    settings: Settings,
) -> None:
    """A handheld paired again in an empty browser never reuses a number the server saw."""
    a = handhelds("h1")
    a.scan(tube(1), "0/10")
    a.scan(resident(1), "1/10")
    a.scan(resident(2), "2/10")
    a.drained()
    b = Handheld(browser, live.url, requests_seen.urls)  # no IndexedDB of its own
    try:
        b.pair(live, "h1")
        b.scan(tube(2), "0/10")
        b.scan(resident(3), "1/10")
        b.drained()
        assert [o["seq"] for o in b.ops()] == [4, 5]
        assert all(o["state"] == "done" for o in b.ops())
        assert server_matches(r, settings, a.ops() + b.ops()) == 3
    finally:
        b.close()


def test_queue_survives_a_browser_restart(
    playwright: Playwright, live: LiveApi, r: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    """Offline scans, the browser closed and started again on its profile, then drained."""
    from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE

    live.round("r1", pool=10)
    live.site("S1")
    live.device("h1", site="S1")
    profile = tmp_path / "profile"

    def launch() -> BrowserContext:
        return playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            viewport=PHONE,
            locale="zh-CN",
            base_url=live.url,
        )

    context = launch()
    page = context.pages[0] if context.pages else context.new_page()
    made = live.post("/v1/devices/h1/pairing", live.admin, {}).json()
    page.goto(f"{live.url}/ui/scan/pair")
    page.fill("#code", made["code"])
    page.click("form[action='/ui/scan/pair'] button[type=submit]")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    context.set_offline(True)
    for code in [tube(1), resident(1), resident(2), resident(3)]:
        page.keyboard.type(code)
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('waiting').textContent !== '0'")
    eventually(lambda: page.inner_text("#waiting") == "4")
    queued = page.evaluate("handheld.ops()")
    context.close()  # the browser is gone; only the profile on disk remains

    context = launch()
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(f"{live.url}/ui/scan")
        page.wait_for_selector("body[data-ready='1']")
        assert page.inner_text("#count") == "3/10"
        eventually(lambda: page.inner_text("#waiting") == "0", timeout=30)
        ops = page.evaluate("handheld.ops()")
        assert sorted(o["op"] for o in ops) == sorted(o["op"] for o in queued)
        assert server_matches(r, settings, ops) == 3
    finally:
        context.close()
