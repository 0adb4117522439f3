"""Audit: ``sampling audit`` shows who, when, where and what for a tube, a box or a
resident, from the archived and the live journal; and the journal only ever grows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from sampling import archive, codes
from sampling.cli import main
from sampling.privacy import ResidentHasher
from sampling.settings import Settings
from tests.conftest import SECRET, Api, redis_env, resident, tube

pytestmark = pytest.mark.cluster_too

BOX = codes.make_box(1)


def audit(settings: Settings, *args: str) -> list[dict[str, Any]]:
    env = {
        **redis_env(settings),
        "SAMPLING_DATA_DIR": str(settings.data_dir),
        "SAMPLING_SECRET": SECRET,
    }
    result = CliRunner().invoke(main, ["audit", *args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _day(api: Api, settings: Settings) -> tuple[str, str]:
    api.round()
    api.site("S1")
    scanner = api.device("d1", site="S1")
    sealer = api.device("seal1", "sealer", site="S1")
    assert api.open(scanner, tube(1), capacity=5).status_code == 201
    for n in (1, 2):
        assert api.scan(scanner, tube(1), resident(n)).status_code == 200
    undo = api.post(
        f"/v1/rounds/r1/tubes/{tube(1)}/undo",
        scanner,
        {"op": "u", "seq": 10, "resident": resident(2)},
    )
    assert undo.status_code == 200, undo.text

    async def drain() -> None:
        await archive.drain(api.client.app.state.services.redis, "r1", settings.data_dir)

    api.client.blocking_portal.call(drain)  # type: ignore[union-attr]
    assert api.scan(scanner, tube(1), resident(3)).status_code == 200
    close = api.post(f"/v1/rounds/r1/tubes/{tube(1)}/close", scanner, {"op": "c", "seq": 11})
    assert close.status_code == 200, close.text
    opened = api.post(
        "/v1/rounds/r1/boxes", sealer, {"op": "b1", "seq": 1, "box": BOX, "lab": "L1"}
    )
    assert opened.status_code == 201, opened.text
    boxed = api.post(
        f"/v1/rounds/r1/boxes/{BOX}/tubes", sealer, {"op": "b2", "seq": 2, "tube": tube(1)}
    )
    assert boxed.status_code == 200, boxed.text
    return scanner, sealer


def test_audit_of_a_tube_a_box_and_a_resident(api: Api, settings: Settings, r: redis.Redis) -> None:
    _day(api, settings)
    assert list((settings.data_dir / "archive" / "r1" / "journal").glob("part-*.parquet"))
    rows = audit(settings, "tube", tube(1), "--round", "r1")
    kinds = [row["kind"] for row in rows]
    assert kinds[:5] == ["open", "scan", "scan", "undo", "scan"], kinds  # archived + live
    assert "close" in kinds[5:]
    assert len(kinds) >= 7  # and the boxing steps
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)
    first = rows[0]
    assert (first["device"], first["role"], first["site"]) == ("d1", "scanner", "S1")
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", first["when"])
    assert any(row["role"] == "sealer" and row["box"] == BOX for row in rows)

    box_rows = audit(settings, "box", BOX, "--round", "r1")
    assert box_rows and all(row["box"] == BOX for row in box_rows)
    assert box_rows[0]["device"] == "seal1" and box_rows[0]["role"] == "sealer"

    ref = ResidentHasher(bytes.fromhex(SECRET)).hex(resident(2))[:8]
    res_rows = audit(settings, "resident", resident(2), "--round", "r1")
    assert [row["kind"] for row in res_rows] == ["scan", "undo"]
    assert all(row["resident"] == ref and row["tube"] == tube(1) for row in res_rows)
    table = CliRunner().invoke(
        main,
        ["audit", "resident", resident(2), "--round", "r1"],
        env={
            **redis_env(settings),
            "SAMPLING_DATA_DIR": str(settings.data_dir),
            "SAMPLING_SECRET": SECRET,
            "COLUMNS": "250",
        },
    )
    assert table.exit_code == 0, table.output
    assert ref in table.stdout and resident(2) not in table.stdout
    bad = CliRunner().invoke(
        main,
        ["audit", "tube", "T123", "--round", "r1"],
        env={**redis_env(settings), "SAMPLING_SECRET": SECRET},
    )
    assert bad.exit_code != 0


def test_journal_only_grows(api: Api, settings: Settings, r: redis.Redis) -> None:
    lengths: list[int] = []

    def length() -> int:
        # Redis and the archive together: a drain (the close runs one) moves entries
        # from the one to the other, and that is not a shrinking journal.
        total = archive.journal(settings.data_dir, "r1").collect().height
        for key in r.scan_iter(match="{rd:*}:journal"):
            total += r.xlen(key)
        lengths.append(total)
        return total

    length()
    scanner, sealer = _day(api, settings)  # includes an archive drain: counted by length()
    base = length()
    calls = [
        lambda: api.scan(scanner, tube(2), resident(9)),
        lambda: api.open(scanner, tube(2), capacity=1),
        lambda: api.scan(scanner, tube(2), resident(9)),
        lambda: api.scan(scanner, tube(2), resident(9)),
        lambda: api.post(
            "/v1/rounds/r1/batches",
            scanner,
            {
                "ops": [
                    {"op": "z1", "seq": 40, "kind": "open", "tube": tube(3), "capacity": 5},
                    {
                        "op": "z2",
                        "seq": 41,
                        "kind": "scan",
                        "tube": tube(3),
                        "resident": resident(7),
                    },
                    {
                        "op": "z3",
                        "seq": 42,
                        "kind": "undo",
                        "tube": tube(3),
                        "resident": resident(7),
                    },
                ]
            },
        ),
        lambda: api.client.put(
            "/v1/rounds/r1/risk",
            headers=api.h(api.admin),
            json={"residents": [{"resident": resident(8), "flags": "Y"}], "reason": "test"},
        ),
        lambda: api.post(
            f"/v1/rounds/r1/boxes/{BOX}/tubes/{tube(1)}/remove",
            sealer,
            {"op": "b3", "seq": 3, "reason": "wrong box"},
        ),
        lambda: api.post("/v1/devices/d1/revoke", api.admin, {}),
        lambda: api.post("/v1/rounds/r1/close", api.admin, {}),
        lambda: api.scan(scanner, tube(2), resident(10)),
    ]
    for call in calls:
        call()
        assert length() >= lengths[-2], lengths
    assert length() >= base


def test_nothing_but_the_archiver_deletes_from_a_journal() -> None:
    """No script or module other than the archiver trims or deletes stream entries."""
    root = Path(__file__).resolve().parents[2] / "sampling"
    offenders = []
    for path in [*root.rglob("*.py"), *root.rglob("*.lua")]:
        text = path.read_text(encoding="utf-8")
        if re.search(r"\b(xdel|xtrim|XDEL|XTRIM)\b", text) and path != root / "archive.py":
            offenders.append(str(path.relative_to(root)))
        if path == root / "archive.py":
            assert text.count("xtrim") == 1  # only what was written to Parquet first
    assert offenders == []
