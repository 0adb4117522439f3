"""Network faults between the API and Redis (a TCP proxy that delays, blackholes, cuts
replies and resets connections): every request ends as a success or a 503 with
Retry-After, and a handheld retrying with the same op id gets each scan applied once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from sampling.api.app import create_app
from sampling.binding import keys
from sampling.store.embedded import EmbeddedServer
from tests.conftest import Api, resident, tube
from tests.faults.conftest import fault_settings
from tests.faults.proxy import FaultProxy

TUBES = 4


@pytest.fixture
def proxy(own_server: EmbeddedServer) -> Iterator[FaultProxy]:
    assert own_server.port
    with FaultProxy(own_server.port) as p:
        yield p


def _api(url: str, data_dir: Path, **kw: Any) -> Iterator[Api]:
    with TestClient(app=create_app(fault_settings(url, data_dir, **kw))) as client:
        yield Api(client)


@pytest.fixture
def api(proxy: FaultProxy, short_dir: Path) -> Iterator[Api]:
    yield from _api(proxy.url, short_dir, redis_timeout=0.4, device_rate=1e6)


def _plan(tok: str) -> list[tuple[str, dict[str, Any], int]]:
    """One handheld's day in small: (path, body, expected success status) in order."""
    ops: list[tuple[str, dict[str, Any], int]] = []
    seq = 0
    for t in range(1, TUBES + 1):
        seq += 1
        ops.append(("/v1/rounds/r1/tubes", {"op": f"o{seq}", "seq": seq, "tube": tube(t)}, 201))
        for k in range(10):
            seq += 1
            ops.append(
                (
                    f"/v1/rounds/r1/tubes/{tube(t)}/scans",
                    {"op": f"s{seq}", "seq": seq, "resident": resident(t * 100 + k)},
                    200,
                )
            )
    return ops


def _chaos(proxy: FaultProxy, stop: threading.Event) -> None:
    steps: list[tuple[str, float]] = [
        ("delay", 0.6),
        ("pass", 0.15),
        ("drop", 0.0),
        ("pass", 0.15),
        ("reset", 0.3),
        ("pass", 0.15),
    ]
    while not stop.is_set():
        for mode, hold in steps:
            if stop.is_set():
                break
            if mode == "drop":
                proxy.drop_after(3)  # the next reply is cut after 3 bytes
            elif mode == "delay":
                proxy.set("delay", 0.5)  # beyond the 0.4 s command timeout
            else:
                proxy.set(mode)  # type: ignore[arg-type]
            stop.wait(hold or 0.15)
    proxy.set("pass")


@pytest.mark.slow
def test_faults_end_as_503_and_retries_apply_once(
    api: Api, proxy: FaultProxy, own_server: EmbeddedServer
) -> None:
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    plan = _plan(tok)
    seen: Counter[int] = Counter()
    answers: list[dict[str, Any]] = []
    stop = threading.Event()
    chaos = threading.Thread(target=_chaos, args=(proxy, stop), daemon=True)
    chaos.start()
    try:
        for path, body, ok in plan:
            deadline = time.monotonic() + 20
            while True:
                t = time.monotonic()
                resp = api.post(path, tok, body)
                took = time.monotonic() - t
                seen[resp.status_code] += 1
                assert resp.status_code in (ok, 503), resp.text
                assert took < 2.0, took  # an answer, never a hang
                if resp.status_code == ok:
                    answers.append(resp.json())
                    time.sleep(0.05)  # a handheld's pace: the stream spans every fault
                    break
                assert resp.headers["retry-after"].isdigit()
                assert resp.json()["code"] == "unavailable"
                assert time.monotonic() < deadline
                time.sleep(0.02)
    finally:
        stop.set()
        chaos.join(5)
    assert seen[503] > 0, seen  # the faults did reach requests
    replayed_first_time = sum(a["replayed"] for a in answers)
    print(
        f"\n[network] {dict(seen)}; first successes answered from the op record: "
        f"{replayed_first_time} (applied during a fault, reply lost)"
    )
    # Every op applied exactly once: replays now answer the same, counters agree.
    for (path, body, _), first in zip(plan, answers, strict=True):
        for _ in range(5):
            again = api.post(path, tok, body)
            if again.status_code != 503:
                break
        assert again.json() == first | {"replayed": True}
    r = redis.Redis.from_url(own_server.url)
    counters = {k.decode(): int(v) for k, v in r.hgetall(keys.count("r1")).items()}
    assert counters["bound"] == TUBES * 10
    assert counters["tubes_opened"] == TUBES
    kinds = Counter(f[b"k"] for _, f in r.xrange(keys.journal("r1")))
    assert kinds[b"scan"] == TUBES * 10
    assert kinds[b"open"] == TUBES
    for t in range(1, TUBES + 1):
        for _ in range(5):  # an idle pooled connection reset during the chaos: one 503
            view = api.get(f"/v1/rounds/r1/tubes/{tube(t)}", tok)
            if view.status_code != 503:
                break
        assert view.status_code == 200, view.text
        assert view.json()["count"] == 10
    r.close()


def test_connection_that_stops_answering_is_replaced(api: Api, proxy: FaultProxy) -> None:
    """A blackhole (bytes swallowed, no FIN): 503 after the timeout, then, once the network
    is back, the next requests succeed on a new connection."""
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    proxy.set("blackhole")
    resp = api.scan(tok, tube(1), resident(1))
    assert resp.status_code == 503
    proxy.set("pass")
    deadline = time.monotonic() + 5
    path = f"/v1/rounds/r1/tubes/{tube(1)}/scans"
    body = {"op": "op-2", "seq": 2, "resident": resident(1)}
    while (resp := api.post(path, tok, body)).status_code == 503:
        assert time.monotonic() < deadline, "the dead connection was never replaced"
        time.sleep(0.1)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("durability", ["everysec", "waitaof"])
def test_script_flush_never_reaches_the_client(
    own_server: EmbeddedServer, short_dir: Path, durability: str
) -> None:
    """Scripts gone (SCRIPT FLUSH, as after a restart or a failover): reloaded, no error."""
    for api in _api(own_server.url, short_dir, durability=durability):
        api.round()
        api.site("S1")
        tok = api.device("d1", site="S1")
        r = redis.Redis.from_url(own_server.url)
        r.script_flush()
        assert api.open(tok, tube(1)).status_code == 201
        for i in range(1, 4):
            r.script_flush()
            resp = api.scan(tok, tube(1), resident(i))
            assert resp.status_code == 200, resp.text
        r.script_flush()
        batch = api.post(
            "/v1/rounds/r1/batches",
            tok,
            {
                "ops": [
                    {
                        "op": "b1",
                        "seq": 90,
                        "kind": "scan",
                        "tube": tube(1),
                        "resident": resident(9),
                    }
                ]
            },
        )
        assert batch.status_code == 200, batch.text
        assert batch.json()["applied"] == 1
        r.close()
