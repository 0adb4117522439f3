"""``sampling results import/held/orphans`` against the server the settings name: the
embedded one, and the 3-master cluster under ``SAMPLING_REDIS_CLUSTER``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from sampling.cli import main
from tests.conftest import SECRET, Api, redis_env, resident, tube

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.settings import Settings

pytestmark = pytest.mark.cluster_too

# Results must fall inside the round (it began today).
AT = datetime.now(UTC).replace(microsecond=0).isoformat()
HEAD = "tube,outcome,ct_orf1ab,ct_n,lab,tested_at\n"


def cli(settings: Settings, *args: str) -> Result:
    env = {
        **redis_env(settings),
        "SAMPLING_DATA_DIR": str(settings.data_dir),
        "SAMPLING_SECRET": SECRET,
        "COLUMNS": "200",
    }
    return CliRunner().invoke(main, list(args), env=env)


def _import(settings: Settings, path: Path) -> dict[str, Any]:
    got = cli(settings, "results", "import", str(path), "--round", "r1", "--json")
    assert got.exit_code == 0, got.output
    report: dict[str, Any] = json.loads(got.stdout.strip().splitlines()[-1])
    return report


def test_import_then_held_and_orphans(api: Api, settings: Settings, tmp_path: Path) -> None:
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1), capacity=5).status_code == 201
    for n in (1, 2):
        assert api.scan(tok, tube(1), resident(n)).status_code == 200
    first = tmp_path / "first.csv"
    first.write_text(HEAD + f"{tube(1)},negative,,,L1,{AT}\n{tube(99)},negative,,,L1,{AT}\n")
    rep = _import(settings, first)
    assert (rep["stored"], rep["orphan"], rep["held"], rep["refused"]) == (1, 1, 0, 0)
    again = _import(settings, first)  # the same file twice: nothing new
    assert (again["stored"], again["duplicate"], again["orphan"]) == (0, 2, 0)
    second = tmp_path / "second.csv"
    second.write_text(HEAD + f"{tube(1)},positive,30,31,L1,{AT}\n")
    assert _import(settings, second)["held"] == 1

    held = cli(settings, "results", "held", "--round", "r1")
    assert held.exit_code == 0, held.output
    assert tube(1) in held.stdout and tube(99) not in held.stdout
    orphans = cli(settings, "results", "orphans", "--round", "r1")
    assert orphans.exit_code == 0, orphans.output
    assert tube(99) in orphans.stdout and tube(1) not in orphans.stdout
