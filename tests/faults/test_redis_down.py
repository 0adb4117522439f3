"""Redis down: the API answers 503 with Retry-After at once, never a 500 or a hang, tells
liveness from readiness, and recovers by itself when Redis is back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from sampling.api.app import create_app
from sampling.store.embedded import EmbeddedServer
from tests.conftest import Api, resident, tube
from tests.faults.conftest import fault_settings

TIMEOUT = 0.5  # the Redis command timeout of the app under test
PROMPT = 1.5  # what "at once" means here: well under a handheld's 10 s client timeout


@pytest.fixture
def api(own_server: EmbeddedServer, short_dir: Path) -> Iterator[Api]:
    settings = fault_settings(own_server.url, short_dir, redis_timeout=TIMEOUT)
    with TestClient(app=create_app(settings)) as client:
        yield Api(client)


def unavailable(resp: Any) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"].isdigit()
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "unavailable"


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t = time.monotonic()
    resp = fn(*args)
    return resp, time.monotonic() - t


def _restart(server: EmbeddedServer) -> None:
    server.kill()
    server.start()  # same data dir, same port: the AOF is replayed


def test_redis_killed_then_back(api: Api, own_server: EmbeddedServer) -> None:
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    assert api.scan(tok, tube(1), resident(1)).status_code == 200
    own_server.kill()
    body = {"op": "s-down", "seq": 50, "resident": resident(2)}
    path = f"/v1/rounds/r1/tubes/{tube(1)}/scans"
    for call in (
        lambda: api.post(path, tok, body),  # the hot path (cached auth)
        lambda: api.get("/v1/whoami", tok),  # a path that reads the device record
        lambda: api.get(f"/v1/rounds/r1/tubes/{tube(1)}", tok),
    ):
        resp, took = timed(call)
        unavailable(resp)
        assert took < PROMPT, took
    assert api.client.get("/healthz").status_code == 200  # alive...
    ready, took = timed(api.client.get, "/readyz")
    unavailable(ready)  # ...but not ready
    assert took < PROMPT
    own_server.start()
    deadline = time.monotonic() + 10
    while api.client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "did not recover"
        time.sleep(0.05)
    resp = api.post(path, tok, body)  # the same op id, retried: applied once
    assert resp.status_code == 200, resp.text
    assert resp.json()["count"] == 2


def test_redis_hangs_then_answers(api: Api, own_server: EmbeddedServer) -> None:
    """A server that stops answering (SIGSTOP): 503 after the command timeout, not a hang;
    the scan sent into the hang may still be applied later, and its retry is answered once."""
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    assert own_server.process is not None
    pid = own_server.process.pid
    body = {"op": "s-hang", "seq": 50, "resident": resident(2)}
    path = f"/v1/rounds/r1/tubes/{tube(1)}/scans"
    os.kill(pid, signal.SIGSTOP)
    try:
        resp, took = timed(api.post, path, tok, body)
        unavailable(resp)
        assert took < TIMEOUT + PROMPT, took
        assert api.client.get("/healthz").status_code == 200
        ready, took = timed(api.client.get, "/readyz")
        unavailable(ready)
        assert took < TIMEOUT + PROMPT, took
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while (resp := api.post(path, tok, body)).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert resp.status_code == 200, resp.text
    assert resp.json()["count"] == 1
    again = api.post(path, tok, body)
    assert again.json() == resp.json() | {"replayed": True}


def test_recovers_after_restart(api: Api, own_server: EmbeddedServer) -> None:
    """A restart (scripts gone, every pooled connection dead) heals without a 500."""
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    _restart(own_server)
    statuses = []
    for i in range(2, 6):
        resp = api.scan(tok, tube(1), resident(i))
        statuses.append(resp.status_code)
        if resp.status_code == 503:
            resp = api.post(
                f"/v1/rounds/r1/tubes/{tube(1)}/scans",
                tok,
                {"op": f"op-{api._seq[tok]}", "seq": api._seq[tok], "resident": resident(i)},
            )
        assert resp.status_code == 200, resp.text
    assert all(s in (200, 503) for s in statuses)
