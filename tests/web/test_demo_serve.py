"""``sampling demo --serve``: the demo round, then the dashboard to open, until Ctrl-C."""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from sampling.store.embedded import free_port
from tests.web.conftest import WALL, Requests, shot

ROOT = Path(__file__).resolve().parents[2]


def _summary(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("{"):
                found: dict[str, Any] = json.loads(line)
                return found
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    raise AssertionError("no summary from sampling demo --serve")


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_demo_serves_its_dashboard_until_interrupted(browser: Browser, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sampling.cli", "demo", "--serve", "--port", str(port), "--json",
         "--residents", "600", "--sites", "6", "--out", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        summary = _summary(proc, timeout=240)
        assert summary["round"] == "demo"
        assert summary["lost"] == 0
        assert summary["dashboard_url"] == f"http://127.0.0.1:{port}/ui/rounds/demo"
        assert summary["viewer_token"].startswith("demo-viewer.")
        context = browser.new_context(viewport=WALL, locale="zh-CN")
        page = context.new_page()
        seen = Requests()
        page.on("request", lambda req: seen.urls.append(req.url))
        page.goto(summary["dashboard_url"])
        assert "/ui/login" in page.url  # not signed in yet
        page.fill("#token", summary["viewer_token"])
        page.click("form[action='/ui/login'] button[type=submit]")
        page.wait_for_url(summary["dashboard_url"])
        sampled = int(re.sub(r"\D", "", page.inner_text("[data-figure=sampled]")))
        assert sampled == summary["bound"]
        expected = int(re.sub(r"\D", "", page.inner_text("[data-figure=expected]")))
        assert expected == summary["coverage"]["residents"]
        assert page.locator("table.coverage[data-level=street] tbody tr").count() > 0
        page.wait_for_timeout(800)
        shot(page, "dashboard-demo")
        # Still serving until interrupted; Ctrl-C ends it cleanly, even with the
        # dashboard still open on its event stream.
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        context.close()
        assert seen.foreign(summary["dashboard_url"]) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # Its pipes too: left to the collector, they are a ResourceWarning in a later test.
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
