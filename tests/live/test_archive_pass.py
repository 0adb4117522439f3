"""One archive pass (what the background archiver runs): an empty round archives, and
the live document reads the coverage table and the as-of stamp the pass wrote."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import polars as pl
import pytest
import redis
from click.testing import CliRunner

from sampling import archive, localtime
from sampling.binding import keys as bkeys
from sampling.cli import main
from sampling.lab.register import import_register
from sampling.live.archiver import archive_round
from sampling.privacy import ResidentHasher
from sampling.store.client import connect
from tests.conftest import SECRET, Api, Store, redis_env, resident, tube

pytestmark = pytest.mark.cluster_too

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.settings import Settings

HEADER = "resident,name,phone,street,community,grid,building,unit,household,labels,colour,away\n"


def _pass(api: Api, round_id: str = "r1") -> Any:
    services = api.client.app.state.services

    async def go() -> Any:
        return await archive_round(services.redis, services.settings.data_dir, round_id)

    return api.client.blocking_portal.call(go)  # type: ignore[union-attr]


def test_empty_round_archives(api: Api, settings: Settings) -> None:
    api.round("empty")
    report = _pass(api, "empty")
    assert report.entries == 1  # the round's creation, journaled with it
    out = settings.data_dir / "archive" / "empty"
    for name in ("bindings.parquet", "boxes.parquet", "results.parquet", "archived.json"):
        assert (out / name).exists(), name
    body = api.get("/v1/rounds/empty/live", api.admin).json()
    assert body["archived_at"] is not None


def test_empty_round_archives_from_the_cli(api: Api, settings: Settings, monkeypatch: Any) -> None:
    api.round("empty")
    for name, value in redis_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAMPLING_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SAMPLING_SECRET", SECRET)
    result = CliRunner().invoke(main, ["archive", "--round", "empty"])
    assert result.exit_code == 0, result.output
    assert "round empty: 1 journal entries archived" in result.output  # its creation
    assert (settings.data_dir / "archive" / "empty" / "archived.json").exists()


def _register(tmp_path: Path, data_dir: Path) -> None:
    # Street A: community A1 (grids g1, g2), street B: community B1 (grid g3).
    # Resident 5 lives in a vacant home, resident 6 is away: neither is expected.
    rows = [
        (1, "A", "A1", "g1", ""), (2, "A", "A1", "g1", ""), (3, "A", "A1", "g2", ""),
        (4, "B", "B1", "g3", ""), (5, "B", "B1", "g3", "vacant"), (6, "B", "B1", "g3", ""),
    ]  # fmt: skip
    text = HEADER + "".join(
        f"{resident(n)},R{n},,{s},{c},{g},1,1,{n},{lab},,{'yes' if n == 6 else ''}\n"
        for n, s, c, g, lab in rows
    )
    path = tmp_path / "register.csv"
    path.write_text(text, encoding="utf-8")
    report, _ = import_register(path, ResidentHasher(bytes.fromhex(SECRET)), data_dir)
    assert report.rows_stored == 6  # type: ignore[attr-defined]


def test_coverage_after_a_pass(api: Api, settings: Settings, tmp_path: Path) -> None:
    _register(tmp_path, settings.data_dir)
    api.round()
    api.site("S1")
    scanner = api.device("hh", site="S1")
    assert api.open(scanner, tube(1)).status_code == 201
    for n in (1, 3, 4):
        assert api.scan(scanner, tube(1), resident(n)).status_code == 200
    before = api.get("/v1/rounds/r1/live", api.admin).json()
    assert before["archived_at"] is None
    assert before["coverage"] == []
    started = time.time()
    _pass(api)
    # A scan after the pass: live in the counters, not yet in the coverage table.
    assert api.scan(scanner, tube(1), resident(2)).status_code == 200
    body = api.get("/v1/rounds/r1/live", api.admin).json()
    assert started <= body["archived_at"] <= time.time()
    assert body["residents"] == {"expected": 4, "sampled": 4, "coverage": 100.0}
    rows = {(c["level"], c["name"]): c for c in body["coverage"]}
    assert rows[("street", "A")] == {
        "level": "street", "name": "A", "parent": "", "expected": 3, "sampled": 2,
        "coverage": 66.67,
    }  # fmt: skip
    assert rows[("community", "B1")]["parent"] == "B"
    assert (rows[("community", "B1")]["expected"], rows[("community", "B1")]["sampled"]) == (1, 1)
    assert rows[("grid", "g1")]["parent"] == "A1"
    assert (rows[("grid", "g1")]["expected"], rows[("grid", "g1")]["sampled"]) == (2, 1)
    assert rows[("grid", "g2")]["coverage"] == 100.0
    assert len(rows) == 2 + 2 + 3
    # The next pass sees the fourth scan.
    _pass(api)
    body = api.get("/v1/rounds/r1/live", api.admin).json()
    rows = {(c["level"], c["name"]): c for c in body["coverage"]}
    assert rows[("grid", "g1")]["sampled"] == 2


def test_reports_say_as_of(api: Api, settings: Settings, tmp_path: Path, monkeypatch: Any) -> None:
    _register(tmp_path, settings.data_dir)
    api.round()
    api.site("S1")
    scanner = api.device("hh", site="S1")
    assert api.open(scanner, tube(1)).status_code == 201
    assert api.scan(scanner, tube(1), resident(1)).status_code == 200
    viewer = api.device("v1", role="viewer")
    _pass(api)
    stamp = archive.as_of(settings.data_dir, "r1")
    assert stamp is not None
    summary = api.get("/v1/rounds/r1/reconciliation", viewer).json()
    assert summary["as_of"] == stamp
    for path in ("/reports/coverage_grid", "/reports/coverage_grid?format=csv", "/doors/g1"):
        # A door list names residents: the admin's (a viewer reads the counts only).
        resp = api.get("/v1/rounds/r1" + path, api.admin if "/doors/" in path else viewer)
        assert resp.status_code == 200, resp.text
        assert float(resp.headers["Sampling-As-Of"]) == round(stamp, 3)
    # The CLI prints the as-of line in the district's time zone.
    for name, value in redis_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAMPLING_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SAMPLING_SECRET", SECRET)
    monkeypatch.setenv("SAMPLING_TZ", "Asia/Shanghai")
    result = CliRunner().invoke(main, ["coverage", "--round", "r1"])
    assert result.exit_code == 0, result.output
    assert f"as of {localtime.stamp(stamp, 'Asia/Shanghai')}" in result.output
    result = CliRunner().invoke(main, ["reconcile", "--round", "r1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["as_of"] == stamp


def test_two_drains_at_once_write_each_entry_once(
    store: Store, r: redis.Redis, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    stream = bkeys.journal("r1")
    pipe = r.pipeline(transaction=False)
    for n in range(6000):
        pipe.xadd(stream, {"k": "probe", "x": str(n)})
    pipe.execute()

    async def go() -> list[archive.ArchiveReport]:
        client = connect(store.url, cluster=store.cluster)
        reports = await asyncio.gather(
            *(archive.drain(client, "r1", tmp_path, chunk=500) for _ in range(3))
        )
        await client.aclose()
        return list(reports)

    reports = loop.run_until_complete(go())
    assert sum(rep.entries for rep in reports) == 6000
    rows = pl.read_parquet(tmp_path / "archive" / "r1" / "journal" / "part-*.parquet")
    assert rows.height == 6000
    # A kind the journal module does not name keeps its packed value as ``detail``.
    assert sorted(rows["detail"].cast(pl.Int64)) == list(range(6000))
    assert r.xlen(stream) == 0
    assert not r.exists(bkeys.archive_lock("r1"))
