"""The CLI refuses a person's mistakes in one line with a non-zero exit, never a
traceback or an empty success, and shows words and local times, not encodings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner, Result

from sampling.cli import main
from tests.conftest import SECRET, Api, redis_env, resident, tube

pytestmark = pytest.mark.cluster_too

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from sampling.settings import Settings

REGISTER_HEAD = "resident,name,street,community,grid,building,unit,household\n"


def cli(settings: Settings, *args: str, tz: str = "Asia/Shanghai") -> Result:
    env = {
        **redis_env(settings),
        "SAMPLING_DATA_DIR": str(settings.data_dir),
        "SAMPLING_SECRET": SECRET,
        "SAMPLING_TZ": tz,
        "COLUMNS": "200",
    }
    return CliRunner().invoke(main, list(args), env=env)


def refused(result: Result, *words: str) -> str:
    """The one line of a refusal, after checking it is one: exit 1, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _archived_round(api: Api, settings: Settings, tmp_path: Path) -> None:
    api.round("r1")
    api.site("S1", grid="G1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1), capacity=5).status_code == 201
    assert api.scan(tok, tube(1), resident(1)).status_code == 200
    reg = tmp_path / "reg.csv"
    reg.write_text(REGISTER_HEAD + f"{resident(1)},张三,花园路,花园社区,G1,1,1,101\n")
    assert cli(settings, "register", "import", str(reg)).exit_code == 0
    done = cli(settings, "archive", "--round", "r1")
    assert done.exit_code == 0, done.output


def test_doors_for_an_unknown_grid_or_round_is_refused(
    api: Api, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _archived_round(api, settings, tmp_path)
    monkeypatch.chdir(tmp_path)
    refused(cli(settings, "doors", "--grid", "G999", "--round", "r1"), "no grid G999", "G1")
    assert not list(tmp_path.glob("doors-*"))  # no empty list written
    refused(cli(settings, "doors", "--grid", "G1", "--round", "nope"), "no round nope")
    refused(cli(settings, "reconcile", "--round", "nope"), "no round nope")
    good = cli(settings, "doors", "--grid", "G1", "--round", "r1")
    assert good.exit_code == 0, good.output


def test_audit_of_an_unknown_round_or_a_garbled_code_is_refused(
    api: Api, settings: Settings
) -> None:
    api.round("r1")
    refused(cli(settings, "audit", "tube", tube(1), "--round", "nope"), "no round nope")
    refused(cli(settings, "audit", "tube", "T12", "--round", "r1"), "garbled_code")
    refused(cli(settings, "audit", "resident", "１２３", "--round", "r1"))
    refused(cli(settings, "results", "held", "--round", "nope"), "no round nope")
    refused(cli(settings, "results", "orphans", "--round", "nope"), "no round nope")
    refused(cli(settings, "audit", "admin", "--round", "nope"), "no round nope")


def test_damaged_or_unknown_files_are_one_line(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    api.round("r1")
    for name, body in (
        ("reg.xlsx", b"PK\x03\x04 not a workbook"),
        ("reg.parquet", b"not parquet"),
        ("reg.txt", REGISTER_HEAD.encode()),
    ):
        path = tmp_path / name
        path.write_bytes(body)
        refused(cli(settings, "register", "import", str(path)), name)
    pdf = tmp_path / "results.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    refused(cli(settings, "results", "import", str(pdf), "--round", "r1"), "unknown file type")
    missing = cli(settings, "register", "import", str(tmp_path / "absent.csv"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert "Traceback" not in missing.output


def test_an_import_with_every_row_refused_exits_nonzero(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    api.round("r1")
    good = tmp_path / "reg.csv"
    good.write_text(REGISTER_HEAD + f"{resident(1)},张三,花园路,花园社区,G1,1,1,101\n")
    assert cli(settings, "register", "import", str(good)).exit_code == 0
    stored = (settings.data_dir / "register" / "register.parquet").read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text(REGISTER_HEAD + "garbled,张三,花园路,花园社区,G1,1,1,101\n")
    refused(cli(settings, "register", "import", str(bad)), "every row was refused")
    # The register in use is not replaced by an empty one.
    assert (settings.data_dir / "register" / "register.parquet").read_bytes() == stored
    not_results = tmp_path / "notes.txt"
    not_results.write_text("This is a letter,\nnot a results file,\nat all\n")
    refused(
        cli(settings, "results", "import", str(not_results), "--round", "r1"),
        "not",
        "results file",
    )
    refused(cli(settings, "results", "import", str(good), "--round", "r1"), "results file")


def test_a_device_needs_a_registered_site_and_a_grid_role_a_grid(
    api: Api, settings: Settings, r: redis.Redis
) -> None:
    refused(
        cli(settings, "device", "create", "hh1", "--role", "scanner", "--site", "S404"),
        "no site S404",
    )
    grid = cli(settings, "device", "create", "g1", "--role", "grid")
    assert grid.exit_code == 2 and "needs --grid" in grid.output
    api.site("S1")
    made = cli(settings, "device", "create", "hh1", "--role", "scanner", "--site", "S1")
    assert made.exit_code == 0, made.output
    assert not r.hexists("{sampling}:devices", "g1")


def test_people_read_words_and_local_times(api: Api, settings: Settings) -> None:
    api.round("r1")
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1), capacity=5).status_code == 201
    assert api.scan(tok, tube(1), resident(1)).status_code == 200
    assert api.post(f"/v1/rounds/r1/tubes/{tube(1)}/close", tok, {"op": "c", "seq": 9}).is_success
    utc = cli(settings, "audit", "tube", tube(1), "--round", "r1", tz="UTC").output
    shanghai = cli(settings, "audit", "tube", tube(1), "--round", "r1").output
    assert "tube opened" in shanghai and "capacity 5, pool" in shanghai
    assert "1 sample in the tube" in shanghai and "1 sample, closed by hand" in shanghai
    assert not re.search(r"x=|\b5:0\b|\b1:hand\b|\b\d{10,}\b", shanghai), shanghai
    hour = re.compile(r"\d{4}-\d\d-\d\d (\d\d):\d\d:\d\d")
    h_utc, h_sh = int(hour.search(utc)[1]), int(hour.search(shanghai)[1])  # type: ignore[index]
    assert (h_utc + 8) % 24 == h_sh
    admin = cli(settings, "audit", "admin", "--round", "r1").output
    assert "round created" in admin and "admin0" in admin


def test_a_result_reads_as_words() -> None:
    from sampling.lab.cli import _result_words
    from sampling.lab.models import LabResult

    res = LabResult(
        tube=tube(1), outcome="negative", ct_orf1ab=None, ct_n=31.5, lab="L1",
        tested_at=1_796_184_580_007,
    )  # fmt: skip
    words = _result_words(res, "Asia/Shanghai")
    assert words == "negative, Ct N 31.5, lab L1, tested 2026-12-02 12:09"
    assert "|" not in words


def test_a_register_import_is_journaled_with_its_risk_flags(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    api.round("r1")
    reg = tmp_path / "reg.csv"
    head = REGISTER_HEAD.strip() + ",colour\n"
    reg.write_text(
        head
        + f"{resident(1)},张三,花园路,花园社区,G1,1,1,101,yellow\n"
        + f"{resident(2)},李四,花园路,花园社区,G1,1,1,102,\n"
    )
    done = cli(settings, "register", "import", str(reg), "--round", "r1")
    assert done.exit_code == 0, done.output
    refused(cli(settings, "register", "import", str(reg), "--round", "nope"), "no round nope")
    rows = [
        line
        for line in cli(settings, "audit", "admin", "--round", "r1", "--json").output.splitlines()
    ]
    import json

    entries = [json.loads(line) for line in rows if line.startswith("{")]
    what = [e["what"] for e in entries]
    assert what == ["round created", "risk flags set", "register imported"], what
    imported = entries[-1]
    assert (imported["file"], imported["stored"], imported["flagged"]) == ("reg.csv", "2", "1")
    assert imported["by"].startswith("cli:")
    risk = cli(settings, "audit", "resident", resident(1), "--round", "r1").output
    assert "risk flags set" in risk and "yellow code" in risk
