"""A small district with a round in it, built through the live server's HTTP API.

Residents of a synthetic district (``sampling.demo.synth``) are scanned into
tubes of ten at one site per grid, a share of each grid left unsampled; then the
register is imported, the round archived and the live tables written, as the
continuous archiver would, so that coverage per street, community and grid exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from sampling import archive, codes
from sampling.demo.synth import District, Resident, district
from sampling.lab.register import import_register
from sampling.live import tables
from sampling.privacy import ResidentHasher
from sampling.store.client import connect
from tests.web.conftest import LiveApi, run_async

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.settings import Settings


@dataclass
class World:
    district: District
    scanners: dict[str, str] = field(default_factory=dict)
    sampled: list[Resident] = field(default_factory=list)
    tubes: list[str] = field(default_factory=list)
    serial: int = 0


def _post(live: LiveApi, path: str, body: dict[str, Any]) -> Any:
    resp = live.post(path, live.admin, body)
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


#: The share of each grid's residents sampled, grid by grid: coverage differs.
SHARES = (0.95, 0.8, 0.55, 0.3)


def build(live: LiveApi, settings: Settings, tmp: Path, residents: int = 160) -> World:
    world = World(district(residents, n_sites=4, seed=11))
    live.round("r1")
    for s in world.district.sites:
        _post(
            live,
            "/v1/sites",
            {"id": s.id, "name": s.name, "street": s.street, "community": s.community,
             "grid": s.grid},
        )  # fmt: skip
        world.scanners[s.grid] = live.device(f"scan-{s.id}", "scanner", site=s.id)
    by_grid: dict[str, list[Resident]] = {}
    for person in world.district.residents:
        if not person.vacant and not person.away and not person.risk_flags:
            by_grid.setdefault(person.grid, []).append(person)
    for i, (grid, people) in enumerate(sorted(by_grid.items())):
        keep = people[: max(1, int(len(people) * SHARES[i % len(SHARES)]))]
        scan_into_tubes(live, world, world.scanners[grid], keep)
    register = tmp / "register.parquet"
    pl.DataFrame(world.district.register_rows()).write_parquet(register)
    import_register(register, ResidentHasher(settings.secret()), settings.data_dir)
    archive_now(settings)
    return world


def scan_into_tubes(live: LiveApi, world: World, token: str, people: list[Resident]) -> None:
    for start in range(0, len(people), 10):
        world.serial += 1
        tube = codes.make_tube(900_000 + world.serial)
        assert live.open(token, tube).status_code == 201
        batch = people[start : start + 10]
        for person in batch:
            resp = live.scan(token, tube, person.code)
            assert resp.status_code == 200, resp.text
            world.sampled.append(person)
        if len(batch) < 10:
            seq = live.next_seq(token)
            resp = live.post(
                f"/v1/rounds/r1/tubes/{tube}/close", token, {"op": f"op-{seq}", "seq": seq}
            )
            assert resp.status_code == 200, resp.text
        world.tubes.append(tube)


def archive_now(settings: Settings) -> None:
    """One archive pass, as the continuous archiver makes: journal, tables, live tables."""

    async def drain() -> None:
        redis = connect(settings.redis_url)
        try:
            await archive.drain(redis, "r1", settings.data_dir)
        finally:
            await redis.aclose()

    run_async(drain)
    archive.materialize(settings.data_dir, "r1")
    tables.write(settings.data_dir, "r1", time.time())
