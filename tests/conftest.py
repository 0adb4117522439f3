"""Real-server fixtures: one embedded Valkey for the session, flushed around each test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from sampling import codes
from sampling.api.app import create_app
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer, free_port
from tests.cluster import Cluster

SECRET = "ab" * 32


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path_factory.mktemp("valkey"), port=free_port()) as srv:
        yield srv


@pytest.fixture
def r(server: EmbeddedServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A 3-master cluster, started for the first test that asks and kept for the session."""
    with Cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture
def cr(cluster: Cluster) -> Iterator[redis.RedisCluster]:
    client = redis.RedisCluster.from_url(cluster.url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def settings(server: EmbeddedServer, tmp_path: Path) -> Settings:
    return Settings(redis_url=server.url, data_dir=tmp_path, secret_hex=SECRET)


class Api:
    """A test client plus helpers to make rounds, sites and devices."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.admin = self._bootstrap_admin()
        self._seq: dict[str, int] = {}

    def _bootstrap_admin(self) -> str:
        from sampling.auth.devices import Devices
        from sampling.auth.models import DeviceIn

        services = self.client.app.state.services

        async def make() -> str:
            return (await Devices(services.redis).create(DeviceIn(id="admin0", role="admin"))).token

        return self.client.blocking_portal.call(make)  # type: ignore[union-attr]

    def h(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def post(self, path: str, token: str, json: Any) -> Any:
        return self.client.post(path, json=json, headers=self.h(token))

    def get(self, path: str, token: str) -> Any:
        return self.client.get(path, headers=self.h(token))

    def device(self, dev_id: str, role: str = "scanner", **kw: Any) -> str:
        resp = self.post("/v1/devices", self.admin, {"id": dev_id, "role": role, **kw})
        assert resp.status_code == 201, resp.text
        token: str = resp.json()["token"]
        return token

    def round(self, round_id: str = "r1", pool: int = 10) -> None:
        resp = self.post("/v1/rounds", self.admin, {"id": round_id, "name": round_id, "pool": pool})
        assert resp.status_code == 201, resp.text

    def site(self, site_id: str, grid: str = "G1") -> None:
        resp = self.post(
            "/v1/sites",
            self.admin,
            {
                "id": site_id,
                "name": f"Point {site_id}",
                "street": "Street 1",
                "community": "Comm 1",
                "grid": grid,
            },
        )
        assert resp.status_code == 201, resp.text

    def next_seq(self, token: str) -> int:
        self._seq[token] = self._seq.get(token, 0) + 1
        return self._seq[token]

    def open(self, token: str, tube: str, round_id: str = "r1", **kw: Any) -> Any:
        seq = self.next_seq(token)
        return self.post(
            f"/v1/rounds/{round_id}/tubes",
            token,
            {"op": f"op-{seq}", "seq": seq, "tube": tube, **kw},
        )

    def scan(self, token: str, tube: str, resident: str, round_id: str = "r1") -> Any:
        seq = self.next_seq(token)
        return self.post(
            f"/v1/rounds/{round_id}/tubes/{tube}/scans",
            token,
            {"op": f"op-{seq}", "seq": seq, "resident": resident},
        )


@pytest.fixture
def api(r: redis.Redis, settings: Settings) -> Iterator[Api]:
    with TestClient(app=create_app(settings)) as client:
        yield Api(client)


def resident(n: int) -> str:
    return codes.make_resident_id(f"{110105000000000000 + n:017d}"[-17:])


def tube(n: int) -> str:
    return codes.make_tube(n)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()
