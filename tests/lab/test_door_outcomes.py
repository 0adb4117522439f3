"""Door outcomes over the API: a grid team records what it found at each door, in its
own grid only; a resident sampled at home goes through the binding rules; outcomes
are journaled, and change the grid's coverage and its next door list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from sampling import archive
from sampling.lab import keys
from sampling.lab.register import import_register
from sampling.privacy import ResidentHasher
from sampling.settings import Settings
from tests.conftest import SECRET, Api, resident, tube

URL = "/v1/rounds/r1/doors/G1/outcomes"
#: (resident n, grid, building, unit, household, labels)
PEOPLE = [
    (1, "G1", "1", "1", "101", ""),
    (2, "G1", "1", "1", "101", ""),
    (3, "G1", "1", "1", "102", ""),
    (4, "G1", "1", "1", "201", ""),
    (5, "G1", "2", "1", "101", "独居老人"),
    (6, "G2", "3", "1", "101", ""),
]


def write_register(path: Path, settings: Settings) -> None:
    lines = ["resident,name,phone,street,community,grid,building,unit,household,labels,colour"]
    for n, grid, b, u, h, labels in PEOPLE:
        lines.append(
            f"{resident(n)},居民{n},1380000000{n},街道1,社区1,{grid},{b},{u},{h},{labels},绿"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report, _ = import_register(path, ResidentHasher(bytes.fromhex(SECRET)), settings.data_dir)
    assert report.rows_stored == len(PEOPLE), report


def door_day(api: Api, settings: Settings, tmp_path: Path) -> dict[str, str]:
    write_register(tmp_path / "register.csv", settings)
    api.round()
    api.site("S1", grid="G1")
    api.site("D1", grid="G1")
    scanner = api.device("d1", site="S1")
    assert api.open(scanner, tube(1), capacity=5).status_code == 201
    assert api.scan(scanner, tube(1), resident(1)).status_code == 200
    return {
        "g1": api.device("g1", role="grid", grid="G1", site="D1"),
        "viewer": api.device("v1", role="viewer"),
    }


def archive_now(api: Api, settings: Settings) -> None:
    async def drain() -> None:
        await archive.drain(api.client.app.state.services.redis, "r1", settings.data_dir)

    api.client.blocking_portal.call(drain)  # type: ignore[union-attr]
    archive.materialize(settings.data_dir, "r1")


def visit(hh: str, outcome: str, op: str, **kw: Any) -> dict[str, Any]:
    b, u, h = hh.split("-")
    return {"op": op, "building": b, "unit": u, "household": h, "outcome": outcome, **kw}


def grid_row(api: Api, token: str) -> dict[str, Any]:
    rows = api.get("/v1/rounds/r1/reports/coverage_grid", token).json()
    found: dict[str, Any] = next(x for x in rows if x["grid"] == "G1")
    return found


def test_outcomes_change_coverage_and_the_next_list(
    api: Api, r: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    toks = door_day(api, settings, tmp_path)
    g1 = toks["g1"]
    archive_now(api, settings)
    before = grid_row(api, toks["viewer"])
    assert (before["residents"], before["sampled"]) == (5, 1)
    names = [x["name"] for x in api.get("/v1/rounds/r1/doors/G1", g1).json()]
    assert names == ["居民2", "居民3", "居民4", "居民5"]

    assert api.post(URL, g1, visit("1-1-102", "moved", "o1")).status_code == 200
    assert api.post(URL, g1, visit("1-1-201", "not_home", "o2")).status_code == 200
    assert api.post(URL, g1, visit("1-1-101", "medical", "o3")).status_code == 200
    home = api.post(
        URL, g1, visit("2-1-101", "sampled", "o4", tube=tube(50), residents=[resident(5)])
    )
    assert home.status_code == 200, home.text
    assert home.json()["tube"] == tube(50) and home.json()["recorded"] == 1
    assert [s["status"] for s in home.json()["binding"]] == ["ok", "ok"]  # open, scan (single)

    # The same operation again changes nothing; its id with another outcome is refused.
    n = r.xlen(keys.journal("r1"))
    again = api.post(URL, g1, visit("1-1-201", "not_home", "o2"))
    assert again.json()["replayed"] is True and r.xlen(keys.journal("r1")) == n
    reused = api.post(URL, g1, visit("1-1-201", "refused", "o2"))
    assert (reused.status_code, reused.json()["code"]) == (422, "operation_reused")

    live = api.get(URL, g1).json()
    assert live["counts"] == {"moved": 1, "not_home": 1, "medical": 1, "sampled": 1}
    by = {(h["building"], h["unit"], h["household"]): h for h in live["households"]}
    (person,) = by[("2", "1", "101")]["people"]
    assert person["outcome"] == "sampled" and person["resident"].endswith(resident(5)[-4:])
    assert "*" in person["resident"] and len(person["ref"]) == 8

    archive_now(api, settings)
    after = grid_row(api, toks["viewer"])
    assert (after["residents"], after["sampled"], after["moved"]) == (4, 2, 1)
    assert (after["not_home"], after["medical"]) == (1, 1)
    nxt = api.get("/v1/rounds/r1/doors/G1", g1).json()
    assert [(x["name"], x["mark"], x["last_outcome"]) for x in nxt] == [
        ("居民2", "door_medical", "medical"),
        ("居民4", "reminder", "not_home"),
    ]


def test_binding_rules_hold_at_the_door(
    api: Api, r: redis.Redis, settings: Settings, tmp_path: Path
) -> None:
    toks = door_day(api, settings, tmp_path)
    g1 = toks["g1"]
    twice = api.post(URL, g1, visit("1-1-101", "sampled", "s1", tube=tube(51),
                                    residents=[resident(1)]))  # fmt: skip
    assert (twice.status_code, twice.json()["code"]) == (409, "resident_already_sampled")
    stranger = api.post(URL, g1, visit("1-1-101", "sampled", "s2", tube=tube(52),
                                       residents=[resident(3)]))  # fmt: skip
    assert stranger.status_code == 400 and "not registered at this household" in stranger.text
    no_tube = api.post(URL, g1, visit("1-1-101", "sampled", "s3"))
    assert no_tube.status_code == 400
    assert r.hlen(keys.door("r1")) == 0
    assert not any(e[1][b"k"] == b"door" for e in r.xrange(keys.journal("r1")))


def test_own_grid_only(api: Api, r: redis.Redis, settings: Settings, tmp_path: Path) -> None:
    toks = door_day(api, settings, tmp_path)
    g1 = toks["g1"]
    other = api.post("/v1/rounds/r1/doors/G2/outcomes", g1, visit("3-1-101", "not_home", "x1"))
    assert other.status_code == 403 and "G1" in other.json()["detail"]
    assert api.get("/v1/rounds/r1/doors/G2/outcomes", g1).status_code == 403
    assert api.get("/v1/rounds/r1/doors/G2", g1).status_code == 403
    nobody = api.post(URL, g1, visit("9-9-999", "not_home", "x2"))
    assert nobody.status_code == 404
    assert r.hlen(keys.door("r1")) == 0
    sealer = api.device("seal1", "sealer", site="S1")
    assert api.post(URL, sealer, visit("1-1-101", "not_home", "x3")).status_code == 403
