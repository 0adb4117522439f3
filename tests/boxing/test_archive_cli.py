"""The journal materializer, the ``sampling boxes`` CLI, and the service's last branches."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import redis
from click.testing import CliRunner

from sampling import archive as sampling_archive
from sampling.auth.models import Device
from sampling.boxing import archive, keys
from sampling.boxing.config import BoxingConfig
from sampling.errors import Refusal
from sampling.journal import decode
from sampling.settings import Settings, SettingsError
from tests.boxing.field import Field, new_box
from tests.conftest import SECRET, Api, Store, redis_env

pytestmark = pytest.mark.cluster_too


@pytest.fixture
def settings(store: Store, tmp_path: Path) -> Settings:
    return store.settings(tmp_path, device_rate=100_000.0)


def _journal(r: redis.Redis, round_id: str = "r1") -> pl.LazyFrame:
    """The round's stream as the archiver hands it over (decoded as it writes a part)."""
    return sampling_archive.rows(r.xrange(keys.journal(round_id))).lazy()


def test_materialize(api: Api, r: redis.Redis, tmp_path: Path) -> None:
    f = Field(api)
    box, (t1, t2, t3) = f.delivered(tubes=3, n=2)
    stray = f.tube(n=1)
    f.intake(box, t1)
    f.intake(box, t2, "leaking")
    f.intake(box, stray)
    f.close_intake(box)
    waiting = new_box()
    f.open(waiting)
    f.add(waiting, keep := f.tube(n=5))
    f.add(waiting, gone := f.tube(n=4))
    f.remove(waiting, gone)
    archive.materialize(_journal(r), tmp_path)

    boxes = pl.read_parquet(tmp_path / "boxes.parquet")
    need = ["box", "site", "lab", "sealed_at", "sealed_by", "picked_up_at", "courier"]
    need += ["received_at", "received_by", "intake_closed_at", "tubes", "samples"]
    assert set(need) <= set(boxes.columns)
    done = boxes.filter(pl.col("box") == box).row(0, named=True)
    assert (done["site"], done["lab"], done["sealed_by"], done["courier"]) == (
        "S1",
        "LA",
        "seal-S1",
        "courier1",
    )
    assert (done["tubes"], done["samples"]) == (3, 6)
    assert done["sealed_at"] <= done["picked_up_at"] <= done["received_at"]
    assert done["received_at"] <= done["intake_closed_at"]
    open_ = boxes.filter(pl.col("box") == waiting).row(0, named=True)
    assert open_["sealed_at"] is None and open_["lab"] is None
    assert (open_["tubes"], open_["samples"]) == (1, 5)
    assert boxes.schema["sealed_at"] == pl.Int64 and boxes.schema["tubes"] == pl.Int64

    tubes = pl.read_parquet(tmp_path / "box_tubes.parquet")
    assert sorted(tubes.filter(pl.col("box") == waiting)["tube"]) == [keep]
    assert sorted(tubes.filter(pl.col("box") == box)["tube"]) == sorted([t1, t2, t3])

    intake = pl.read_parquet(tmp_path / "intake.parquet").sort("tube")
    got = {(row["tube"], row["status"], row["residents"]) for row in intake.iter_rows(named=True)}
    assert got == {(t1, "received", 2), (t2, "damaged", 2), (t3, "missing", 2), (stray, "extra", 1)}
    assert set(intake["status"]) <= {"received", "missing", "extra", "damaged"}


def test_materialize_without_boxing_entries(tmp_path: Path) -> None:
    journal = decode(
        pl.LazyFrame(
            {"id": ["1-0"], "ts": [1], "k": ["scan"], "d": ["d"], "site": ["S1"], "seq": ["1"]}
            | {"op": ["o"], "tube": ["T"], "r": ["ab"], "x": ["1"]},
            schema_overrides={"ts": pl.Int64},
        )
    )
    archive.materialize(journal, tmp_path)
    for name in ("boxes", "box_tubes", "intake"):
        assert pl.read_parquet(tmp_path / f"{name}.parquet").height == 0


def test_cli(api: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = Field(api)
    box, (t1, _) = f.delivered()
    f.tube()
    for name, value in redis_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAMPLING_SECRET", SECRET)
    monkeypatch.setenv("SAMPLING_DATA_DIR", str(tmp_path))
    from sampling.boxing.cli import boxes

    runner = CliRunner()
    got = runner.invoke(boxes, ["timeline", t1, "--round", "r1"])
    assert got.exit_code == 0, got.output
    assert "picked_up" in got.output and "boxed" in got.output
    got = runner.invoke(boxes, ["timeline", box, "--round", "r1", "--json"])
    assert '"kind": "box"' in got.output
    got = runner.invoke(boxes, ["overdue", "--round", "r1", "--unboxed", "0", "--intake", "0"])
    assert got.exit_code == 0, got.output
    assert "2 overdue" in got.output
    got = runner.invoke(boxes, ["overdue", "--round", "r1", "--json"])
    assert '"unboxed": []' in got.output
    pdf = tmp_path / "m.pdf"
    got = runner.invoke(boxes, ["manifest", box, "--round", "r1", "--pdf", str(pdf)])
    assert got.exit_code == 0, got.output
    assert f'"box": "{box}"' in got.output and pdf.read_bytes().startswith(b"%PDF")
    got = runner.invoke(boxes, ["discrepancies", box, "--round", "r1"])
    assert '"missing": [' in got.output
    got = runner.invoke(boxes, ["show", box, "--round", "r1"])
    assert '"state": "received"' in got.output
    got = runner.invoke(boxes, ["manifest", new_box(), "--round", "r1"])
    assert got.exit_code != 0 and "not_found" in got.output


def test_seal_gives_up_when_the_box_keeps_changing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = Field(api)
    box = new_box()
    f.open(box)
    f.add(box, f.tube())
    boxer = api.client.app.state.services.boxer

    async def stale(_key: str) -> list[bytes]:
        return []

    monkeypatch.setattr(api.client.app.state.services.redis, "hkeys", stale)
    sealer = Device(id="seal-S1", role="sealer", site="S1")

    async def go() -> None:
        with pytest.raises(Refusal) as err:
            await boxer.seal(sealer, "r1", box, seq=99, op="busy", tubes=1, samples=3)
        assert err.value.code == "box_busy"

    api.client.blocking_portal.call(go)  # type: ignore[union-attr]
    assert f.get(f"/boxes/{box}").json()["state"] == "open"


def test_service_refuses_a_revoked_device(api: Api, r: redis.Redis) -> None:
    f = Field(api)
    r.sadd(keys.revoked("r1"), "ghost")
    boxer = api.client.app.state.services.boxer

    async def go() -> None:
        with pytest.raises(Refusal) as err:
            await boxer.open(
                Device(id="ghost", role="sealer", site="S1"), "r1", new_box(), seq=1, op="o"
            )
        assert (err.value.code, err.value.status) == ("token_revoked", 401)

    api.client.blocking_portal.call(go)  # type: ignore[union-attr]
    assert f.get("/overdue").status_code == 200


def test_config_from_env() -> None:
    cfg = BoxingConfig.from_settings(
        Settings.from_env({"SAMPLING_BOX_CAPACITY": "50", "SAMPLING_BOX_TRANSIT_MIN": "90"})
    )
    assert (cfg.capacity, cfg.transit_after, cfg.pickup_after) == (50, 5400, 3600)
    with pytest.raises(SettingsError, match="SAMPLING_BOX_CAPACITY"):
        Settings.from_env({"SAMPLING_BOX_CAPACITY": "many"})
    with pytest.raises(SettingsError, match="positive"):
        Settings.from_env({"SAMPLING_BOX_INTAKE_MIN": "0"})


def test_cli_reads_box_settings_with_the_rest(
    api: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The boxes commands take boxing's settings from the one Settings: a bad one is a
    one-line error before anything runs, and a good one reaches the overdue limits."""
    Field(api)  # the round
    for name, value in redis_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAMPLING_SECRET", SECRET)
    monkeypatch.setenv("SAMPLING_DATA_DIR", str(tmp_path))
    from sampling.boxing.cli import boxes

    monkeypatch.setenv("SAMPLING_BOX_PICKUP_MIN", "soon")
    got = CliRunner().invoke(boxes, ["overdue", "--round", "r1", "--json"])
    assert got.exit_code != 0
    assert "SAMPLING_BOX_PICKUP_MIN='soon' is not a whole number" in got.output
    assert "Traceback" not in got.output
    monkeypatch.setenv("SAMPLING_BOX_PICKUP_MIN", "7")
    got = CliRunner().invoke(boxes, ["overdue", "--round", "r1", "--json"])
    assert got.exit_code == 0, got.output
    assert '"sealed": 420' in got.output
