"""Abuse limits: a flooding device is slowed with 429s keyed on its authenticated id while
other devices are not; past the in-flight cap a worker answers 503 at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar import get, post
from litestar.testing import TestClient

from sampling.api.app import create_app
from sampling.api.limits import DeviceLimiter
from sampling.errors import RateLimited
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer
from tests.conftest import SECRET, Api

RATE = 5.0


@pytest.fixture
def settings(server: EmbeddedServer, tmp_path: Path) -> Settings:
    return Settings(redis_url=server.url, data_dir=tmp_path, secret_hex=SECRET, device_rate=RATE)


def test_token_bucket() -> None:
    now = [0.0]
    limiter = DeviceLimiter(RATE, clock=lambda: now[0])
    for _ in range(int(2 * RATE)):  # the burst
        limiter.take("a")
    with pytest.raises(RateLimited) as refused:
        limiter.take("a")
    assert refused.value.detail["retry_after"] >= 1
    limiter.take("b")  # another device has its own bucket
    now[0] += 1.0  # a second refills RATE tokens
    for _ in range(int(RATE)):
        limiter.take("a")
    with pytest.raises(RateLimited):
        limiter.take("a")


def test_flooding_device_is_slowed_and_others_are_not(api: Api) -> None:
    api.round()
    api.site("S1")
    flood = api.device("flood", site="S1")
    calm = api.device("calm", site="S1")
    statuses = [api.get("/v1/whoami", flood).status_code for _ in range(40)]
    assert statuses.count(200) <= 2 * RATE + 2  # the burst, and what refilled meanwhile
    assert statuses.count(429) >= 40 - 2 * RATE - 2
    resp = api.get("/v1/whoami", flood)
    assert resp.status_code == 429
    assert resp.json()["code"] == "rate_limited"
    assert int(resp.headers["retry-after"]) >= 1
    # The limit follows the authenticated device, not anything the client says about itself.
    spoof = {**api.h(flood), "X-Device-Id": "calm", "X-Forwarded-For": "10.9.9.9"}
    assert api.client.get("/v1/whoami", headers=spoof).status_code == 429
    for _ in range(int(RATE)):
        assert api.get("/v1/whoami", calm).status_code == 200
    time.sleep(1.0)  # refilled: the flooder may go on at the sustained rate
    assert api.get("/v1/whoami", flood).status_code == 200


@get("/slow", opt={})
async def slow() -> dict[str, str]:
    await asyncio.sleep(0.5)
    return {"ok": "yes"}


@pytest.fixture
def tiny_app(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path, secret_hex=SECRET, max_inflight=3
    )
    with TestClient(app=create_app(settings, extra_routes=[slow])) as client:
        yield client


def test_overload_answers_503_at_once(tiny_app: TestClient) -> None:  # type: ignore[type-arg]
    async def burst() -> list[tuple[int, float, httpx.Response]]:
        transport = httpx.ASGITransport(app=tiny_app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def one() -> tuple[int, float, httpx.Response]:
                t = time.monotonic()
                resp = await client.get("/slow")
                return resp.status_code, time.monotonic() - t, resp

            return await asyncio.gather(*(one() for _ in range(12)))

    results = tiny_app.blocking_portal.call(burst)  # type: ignore[union-attr]
    ok = [r for r in results if r[0] == 200]
    over = [r for r in results if r[0] == 503]
    assert len(ok) == 3 and len(over) == 9, [r[0] for r in results]
    for _, took, resp in over:
        assert took < 0.3  # at once, not after the slow requests
        assert resp.json()["code"] == "overloaded"
        assert resp.headers["retry-after"] == "1"
        assert resp.headers["content-type"] == "application/problem+json"
    assert tiny_app.get("/healthz").status_code == 200  # liveness is never refused
    assert tiny_app.app.state.gate.inflight == 0


@post("/slow/batches", opt={}, status_code=200)
async def slow_batch() -> dict[str, str]:
    await asyncio.sleep(0.5)
    return {"ok": "batch"}


@pytest.fixture
def batch_app(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings(
        redis_url="redis://127.0.0.1:1/0",
        data_dir=tmp_path,
        secret_hex=SECRET,
        max_inflight=3,
        max_inflight_batches=2,
    )
    with TestClient(app=create_app(settings, extra_routes=[slow, slow_batch])) as client:
        yield client


def test_batches_have_room_of_their_own(batch_app: TestClient) -> None:  # type: ignore[type-arg]
    """A surge of batch uploads fills only the batches' room: single requests sent while
    it is full still get in, and singles filling their room never refuse a batch."""

    async def surge() -> tuple[list[int], list[int]]:
        transport = httpx.ASGITransport(app=batch_app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            batches = [asyncio.ensure_future(client.post("/slow/batches")) for _ in range(8)]
            await asyncio.sleep(0.1)  # the batches are in flight
            singles = await asyncio.gather(*(client.get("/slow") for _ in range(3)))
            return [r.status_code for r in await asyncio.gather(*batches)], [
                r.status_code for r in singles
            ]

    batches, singles = batch_app.blocking_portal.call(surge)  # type: ignore[union-attr]
    assert sorted(batches) == [200, 200] + [503] * 6, batches
    assert singles == [200, 200, 200]

    async def flood() -> tuple[list[int], int]:
        transport = httpx.ASGITransport(app=batch_app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            singles = [asyncio.ensure_future(client.get("/slow")) for _ in range(8)]
            await asyncio.sleep(0.1)
            batch = await client.post("/slow/batches")
            return [r.status_code for r in await asyncio.gather(*singles)], batch.status_code

    singles, batch = batch_app.blocking_portal.call(flood)  # type: ignore[union-attr]
    assert sorted(singles) == [200] * 3 + [503] * 5, singles
    assert batch == 200
    gate = batch_app.app.state.gate
    assert gate.inflight == gate.batches == 0
    assert gate.refused_batches == 6
