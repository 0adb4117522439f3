"""The API process killed in the middle of a handheld's drain, and started again.

The server runs as a real subprocess (uvicorn) so that it can be killed
outright. The third batch is applied by the server but its answer is lost
(the connection is cut after the server answered, and the process killed), the
batches after it meet a dead port; once the API is back the page sends the rest
and resends the lost one, and every operation is applied exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Route

from sampling.binding import keys
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer, free_port
from tests.conftest import SECRET, resident, tube
from tests.web.conftest import LiveApi, Requests
from tests.web.handheld import Handheld, server_matches

pytestmark = pytest.mark.browser
BATCH = 10


class ApiProcess:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.port = env, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "sampling.api.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=Path(__file__).resolve().parents[2],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the API process did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def api_process(r: redis.Redis, server: EmbeddedServer, tmp_path: Path) -> Iterator[ApiProcess]:
    env = dict(os.environ)
    env.update(
        SAMPLING_REDIS_URL=server.url,
        SAMPLING_SECRET=SECRET,
        SAMPLING_DATA_DIR=str(tmp_path),
        SAMPLING_MAX_BATCH=str(BATCH),
        SAMPLING_WORKERS="1",
    )
    proc = ApiProcess(env, free_port())
    proc.start()
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.kill()


def test_api_killed_mid_drain(
    browser: Browser,
    api_process: ApiProcess,
    server: EmbeddedServer,
    r: redis.Redis,
    settings: Settings,
    requests_seen: Requests,
) -> None:
    live = LiveApi(SimpleNamespace(url=api_process.url), server.url)  # type: ignore[arg-type]
    live.round("r1", pool=20)
    live.site("S1")
    live.device("h1", site="S1")
    h = Handheld(browser, api_process.url, requests_seen.urls)
    try:
        h.pair(live, "h1")
        h.offline()
        for t in range(3):
            h.scan(tube(1 + t), "0/20")
            for n in range(20):
                h.scan(resident(1000 + 20 * t + n))
        assert h.waiting() == 63

        seen: dict[str, Any] = {"batches": 0, "killed": False}

        def on_batch(route: Route) -> None:
            seen["batches"] += 1
            if seen["batches"] == 3 and not seen["killed"]:
                answer = route.fetch()  # the server applies the batch and answers...
                assert answer.status == 200
                api_process.kill()  # ...and dies; the page never hears the answer
                seen["killed"] = True
                route.abort("connectionreset")
                return
            route.continue_()

        h.page.route("**/v1/rounds/r1/batches", on_batch)
        h.offline(False)
        while not seen["killed"]:
            h.page.wait_for_timeout(20)
        applied_before_restart = int(r.hget(keys.count("r1"), "bound") or 0)
        assert 0 < applied_before_restart < 60
        h.page.wait_for_timeout(1500)  # the page retries against a dead port meanwhile
        assert h.waiting() > 0
        api_process.start()
        h.drained(timeout=60)
        assert seen["batches"] > 7  # 63 ops in batches of 10, one resent, failures retried
        ops = h.ops()
        assert all(o["state"] == "done" for o in ops)
        assert server_matches(r, settings, ops) == 60
        scans = [e for _, e in r.xrange(keys.journal("r1")) if e[b"k"] == b"scan"]
        assert len(scans) == 60  # each applied once, the resent batch replayed
        assert r.hget(keys.count("r1"), "tubes_closed") == b"3"
    finally:
        h.close()
        live.client.close()
    assert requests_seen.foreign(api_process.url) == []
