"""Real-server fixtures: one embedded Valkey for the session, flushed around each test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from sampling import codes
from sampling.api.app import create_app
from sampling.binding import keys as bkeys
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer, free_port
from tests.cluster import Cluster

SECRET = "ab" * 32


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path_factory.mktemp("valkey"), port=free_port()) as srv:
        yield srv


@dataclass(frozen=True)
class Store:
    """Where a test's Redis is: the embedded server, or the 3-master test cluster."""

    url: str
    cluster: bool

    def settings(self, data_dir: Path, **changes: Any) -> Settings:
        """Settings pointing at this store, with the tests' secret and ``changes``."""
        return Settings(
            redis_url=self.url,
            redis_cluster=self.cluster,
            data_dir=data_dir,
            secret_hex=SECRET,
            **changes,
        )


#: The two stores a ``cluster_too`` test runs against; the cluster case is marked
#: ``cluster`` (``-m "not cluster"`` runs the single-server cases alone).
STORES = ["single", pytest.param("cluster", marks=pytest.mark.cluster)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" in metafunc.fixturenames and metafunc.definition.get_closest_marker("cluster_too"):
        metafunc.parametrize("store", STORES, indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Store:
    """The embedded server, unless a ``cluster_too`` test asked for its cluster case
    (the cluster is started only then)."""
    if getattr(request, "param", "single") == "cluster":
        # Seeded away from round r1 (most tests' round), so that a client made
        # without the cluster setting fails there rather than passing by luck.
        cluster: Cluster = request.getfixturevalue("cluster")
        return Store(cluster.url_away_from(bkeys.meta("r1")), cluster=True)
    return Store(request.getfixturevalue("server").url, cluster=False)


@pytest.fixture
def r(store: Store) -> Iterator[redis.Redis]:
    """A client of the test's store, flushed around the test. On the cluster it is a
    ``RedisCluster``: the commands the tests use route by key or go to every primary."""
    client: Any = (redis.RedisCluster if store.cluster else redis.Redis).from_url(store.url)
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
def settings(store: Store, tmp_path: Path) -> Settings:
    return store.settings(tmp_path)


def redis_env(settings: Settings) -> dict[str, str]:
    """The environment that points a CLI command at the settings' Redis."""
    return {
        "SAMPLING_REDIS_URL": settings.redis_url,
        "SAMPLING_REDIS_CLUSTER": "1" if settings.redis_cluster else "0",
    }


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
