"""Measured: a queue of 2,000 operations draining in batches, and Enter to count shown.

Prints the figures (run with ``-s``)::

    .venv/bin/pytest tests/web/test_scan_bench.py -m browser -s -q
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import pytest
import redis
from playwright.sync_api import Browser

from sampling.binding import keys
from sampling.settings import Settings
from tests.conftest import resident, tube
from tests.web.conftest import LiveApi, Requests, eventually
from tests.web.handheld import Handheld, server_matches

pytestmark = [pytest.mark.browser, pytest.mark.slow]
OPS = 2_000
POOL = 20


@pytest.fixture
def h1(browser: Browser, live: LiveApi, requests_seen: Requests) -> Iterator[Handheld]:
    live.round("r1", pool=POOL)
    live.site("S1")
    live.device("h1", site="S1")
    h = Handheld(browser, live.url, requests_seen.urls)
    h.pair(live, "h1")
    yield h
    h.close()


def _codes(n_ops: int, first_tube: int, first_resident: int) -> list[str]:
    out: list[str] = []
    t = first_tube
    while len(out) < n_ops:
        out.append(tube(t))
        out += [resident(first_resident + POOL * (t - first_tube) + i) for i in range(POOL)]
        t += 1
    return out[:n_ops]


def test_drain_2000_and_enter_to_count(
    h1: Handheld, r: redis.Redis, settings: Settings, live: LiveApi
) -> None:
    page = h1.page
    # Online: a sampler's scans, Enter pressed on the keyboard, 3 tubes of 20.
    for code in _codes(63, 1, 0):
        h1.scan(code)
    enter_ms = page.evaluate("handheld.timings.slice()")
    h1.drained()

    # Offline: a queue of 2,000 operations, entered through the page's own path.
    h1.offline()
    page.evaluate(
        "async (codes) => { for (const c of codes) await handheld.enter(c); }",
        _codes(OPS, 100, 10_000),
    )
    assert h1.waiting() == OPS
    t0 = time.perf_counter()
    h1.offline(False)
    eventually(lambda: h1.waiting() == 0, timeout=120, every=0.05)
    wall = time.perf_counter() - t0
    drain = page.evaluate("handheld.drains[handheld.drains.length - 1]")
    ops = h1.ops()
    bound = server_matches(r, settings, ops)
    assert bound == 60 + (OPS // (POOL + 1)) * POOL + (OPS % (POOL + 1) - 1)
    assert int(r.hget(keys.count("r1"), "bound") or 0) == bound
    q = statistics.quantiles(enter_ms, n=20)
    print(
        f"\nhandheld bench: {OPS} queued operations drained in {drain['batches']} batches "
        f"(limit {settings.max_batch}) in {drain['ms'] / 1000:.2f} s on the page "
        f"({wall:.2f} s from network back to 'waiting 0' seen by the test); "
        f"{OPS / (drain['ms'] / 1000):.0f} ops/s"
    )
    print(
        f"handheld bench: Enter to count shown, online, {len(enter_ms)} entries: "
        f"median {statistics.median(enter_ms):.1f} ms, p95 {q[18]:.1f} ms, "
        f"max {max(enter_ms):.1f} ms"
    )
    assert drain["batches"] == -(-OPS // settings.max_batch)
    assert drain["ms"] < 60_000
    assert statistics.median(enter_ms) < 250
