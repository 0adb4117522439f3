"""The alarms past the box: tubes left open at a point, tubes received without a result."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from sampling.boxing import keys
from sampling.boxing.config import BoxingConfig
from sampling.settings import Settings, SettingsError
from tests.boxing.field import Field
from tests.conftest import SECRET, Api

if TYPE_CHECKING:
    import redis

    from sampling.store.embedded import EmbeddedServer


def _codes(f: Field, query: str, which: str) -> list[str]:
    resp = f.get(f"/overdue?{query}")
    assert resp.status_code == 200, resp.text
    return [x["code"] for x in resp.json()[which]]


def test_tube_open_too_long(api: Api) -> None:
    f = Field(api)
    left_open = f.tube(n=2, close=False)
    closed = f.tube(n=2)
    assert _codes(f, "open=0", "open") == [left_open]
    got = f.get("/overdue?open=0").json()["open"][0]
    assert got["site"] == "S1" and got["minutes"] >= 0
    # within the default limit (60 minutes) nothing is late yet
    assert _codes(f, "", "open") == []
    assert f.get("/overdue").json()["limits"]["open"] == 3600
    # closing it ends the alarm
    seq = api.next_seq(f.scanner["S1"])
    body = {"op": f"c{seq}", "seq": seq}
    path = f"/v1/rounds/r1/tubes/{left_open}/close"
    assert api.post(path, f.scanner["S1"], body).status_code == 200
    assert _codes(f, "open=0", "open") == []
    assert closed not in _codes(f, "open=0", "open")


def test_received_without_result(api: Api, r: redis.Redis) -> None:
    f = Field(api)
    box, (good, broken, late) = f.delivered(tubes=3, n=2)
    assert f.intake(box, good).status_code == 200
    assert f.intake(box, broken, "damaged").status_code == 200
    assert f.intake(box, late).status_code == 200
    # a damaged tube gives no result to wait for: only the good ones are listed
    assert sorted(_codes(f, "result=0", "result")) == sorted([good, late])
    first = f.get("/overdue?result=0").json()["result"][0]
    assert (first["site"], first["lab"]) == ("S1", "LA")
    assert _codes(f, "", "result") == []  # the default limit is 4 hours
    assert f.get("/overdue").json()["limits"]["result"] == 4 * 3600
    row = {
        "tube": good,
        "outcome": "negative",
        "tested_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    resp = api.post("/v1/rounds/r1/results", f.lab, {"results": [row]})
    assert resp.status_code == 200 and resp.json()["stored"] == 1, resp.text
    assert _codes(f, "result=0", "result") == [late]
    # the resulted tube left the index as it was met
    assert r.zscore(keys.due("r1", "result"), good) is None
    assert r.zscore(keys.due("r1", "result"), late) is not None


def test_alarm_settings() -> None:
    got = Settings.from_env({"SAMPLING_OPEN_MIN": "15", "SAMPLING_RESULT_MIN": "150"})
    assert (got.open_after, got.result_after) == (15 * 60, 150 * 60)
    cfg = BoxingConfig.from_settings(got)
    assert (cfg.open_after, cfg.result_after) == (15 * 60, 9000)
    defaults = BoxingConfig.from_settings(Settings.from_env({}))
    assert (defaults.open_after, defaults.result_after) == (3600, 4 * 3600)
    with pytest.raises(SettingsError, match="SAMPLING_OPEN_MIN"):
        Settings.from_env({"SAMPLING_OPEN_MIN": "0"})
    with pytest.raises(SettingsError, match="SAMPLING_OPEN_MIN"):
        Settings.from_env({"SAMPLING_OPEN_MIN": "soon"})


def test_cli_lists_both_alarms(
    api: Api, server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    f = Field(api)
    box, (t1,) = f.delivered(tubes=1, n=2)
    assert f.intake(box, t1).status_code == 200
    left_open = f.tube(n=1, close=False)
    monkeypatch.setenv("SAMPLING_REDIS_URL", server.url)
    monkeypatch.setenv("SAMPLING_SECRET", SECRET)
    monkeypatch.setenv("SAMPLING_DATA_DIR", str(tmp_path))
    from sampling.boxing.cli import boxes

    got = CliRunner().invoke(boxes, ["overdue", "--round", "r1", "--open", "0", "--result", "0"])
    assert got.exit_code == 0, got.output
    lines = got.output.splitlines()
    assert any("open" in ln and left_open in ln for ln in lines)
    assert any("result" in ln and t1 in ln for ln in lines)
