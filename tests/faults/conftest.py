"""Helpers of the fault tests: private servers, services built like the API's, ledgers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from sampling import codes
from sampling.api.services import Services
from sampling.auth.models import Device, DeviceIn
from sampling.binding import keys
from sampling.binding.models import RoundIn, SiteIn
from sampling.privacy import ResidentHasher
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer, free_port
from tests.conftest import SECRET, resident

ROUND = "f1"


@pytest.fixture
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a short path (a unix socket path must stay under 100 bytes)."""
    return tmp_path_factory.mktemp("fx")


@pytest.fixture
def own_server(short_dir: Path) -> Iterator[EmbeddedServer]:
    """A server of this test alone, on a TCP port, killed or stopped at the end."""
    srv = EmbeddedServer(short_dir / "valkey", port=free_port())
    srv.start()
    yield srv
    srv.kill()


def fault_settings(url: str, data_dir: Path, **kw: object) -> Settings:
    return Settings(redis_url=url, data_dir=data_dir, secret_hex=SECRET, **kw)  # type: ignore[arg-type]


async def setup_round(
    svc: Services, devices: int = 1, round_id: str = ROUND, pool: int = 10
) -> list[Device]:
    """A round, one site per scanner and ``devices`` scanners; returns the scanners."""
    await svc.rounds.create(RoundIn(id=round_id, name=round_id, pool=pool))
    out = []
    for i in range(devices):
        await svc.sites.create(
            SiteIn(id=f"S{i}", name=f"Point {i}", street="St", community="C", grid="G1")
        )
        await svc.devices.create(DeviceIn(id=f"d{i}", role="scanner", site=f"S{i}"))
        out.append(await svc.devices.get(f"d{i}"))
    return out


@dataclass
class Ledger:
    """What the client was told: every acknowledged scan, resident code -> tube code."""

    acked: dict[str, str] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)
    errors: int = 0


def missing(r: redis.Redis, ledger: Ledger, round_id: str = ROUND) -> list[str]:
    """Acknowledged scans whose binding is not in Redis (by the resident's bucket)."""
    hasher = ResidentHasher(bytes.fromhex(SECRET))
    items = list(ledger.acked.items())
    pipe = r.pipeline(transaction=False)
    for code, _ in items:
        digest = hasher.digest(code)
        pipe.hget(keys.resident_bucket(round_id, digest), digest[2:])
    found = pipe.execute()
    return [
        code
        for (code, tube), serial in zip(items, found, strict=True)
        if serial is None or int(serial) != codes.tube_number(tube)
    ]


def person(device: int, n: int) -> str:
    return resident(device * 1_000_000 + n)


def tube_code(device: int, n: int) -> str:
    return codes.make_tube((device + 1) * 1_000_000 + n)
