"""Reports over the API: JSON, CSV, Parquet, XLSX, PDF; a grid team sees only its own grid."""

from __future__ import annotations

import io

import polars as pl
import pytest

from sampling.lab import synth
from sampling.settings import Settings
from tests.conftest import Api

pytestmark = pytest.mark.cluster_too


def _archive(settings: Settings) -> None:
    synth.write(synth.generate(3000, seed=3), settings.data_dir, "r1")


def test_grid_team_sees_only_its_grid(api: Api, settings: Settings) -> None:
    _archive(settings)
    own = api.device("g1", role="grid", grid="G0001")
    got = api.get("/v1/rounds/r1/doors/G0001", own)
    assert got.status_code == 200, got.text
    assert {row["grid"] for row in got.json()} <= {"G0001"}
    assert api.get("/v1/rounds/r1/doors/G0002", own).status_code == 403
    assert api.get("/v1/rounds/r1/reports/coverage_grid", own).status_code == 403
    scanner = api.device("s1", site="S1")
    assert api.get("/v1/rounds/r1/doors/G0001", scanner).status_code == 403


def test_report_formats(api: Api, settings: Settings) -> None:
    _archive(settings)
    viewer = api.device("v1", role="viewer")
    summary = api.get("/v1/rounds/r1/reconciliation", viewer).json()
    assert summary["bound"] == sum(summary["states"].values())
    csv = api.get("/v1/rounds/r1/reports/coverage_grid?format=csv", viewer)
    assert csv.headers["content-type"].startswith("text/csv")
    pq = api.get("/v1/rounds/r1/reports/coverage_grid?format=parquet", viewer)
    frame = pl.read_parquet(io.BytesIO(pq.content))
    assert frame.height == 336 and (frame["coverage_pct"] <= 100).all()
    pdf = api.get("/v1/rounds/r1/doors/G0005?format=pdf", api.admin)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    xlsx = api.get("/v1/rounds/r1/doors/G0005?format=xlsx", api.admin)
    assert xlsx.content.startswith(b"PK")
    assert api.get("/v1/rounds/r1/reports/nope", viewer).status_code == 404
    assert api.get("/v1/rounds/zz/reconciliation", viewer).status_code == 404
