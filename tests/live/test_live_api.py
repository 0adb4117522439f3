"""GET /v1/rounds/{round}/live: each figure against a round built through the API."""

from __future__ import annotations

import pytest

from tests.boxing.field import Field, problem
from tests.conftest import Api


@pytest.fixture
def f(api: Api) -> Field:
    return Field(api)


def live(f: Field, token: str | None = None) -> dict:
    resp = f.get("/live", token)
    assert resp.status_code == 200, resp.text
    body: dict = resp.json()
    return body


def test_roles_and_unknown_round(f: Field) -> None:
    assert live(f, f.viewer)["round"] == "r1"
    grid = f.api.device("grid-G1", role="grid", grid="G1")
    problem(f.get("/live", grid), 403, "forbidden")
    problem(f.get("/live", f.scanner["S1"]), 403, "forbidden")
    problem(f.api.get("/v1/rounds/nope/live", f.api.admin), 404, "not_found")


def test_fields_of_an_empty_round(f: Field) -> None:
    body = live(f)
    assert list(body) == [
        "round", "as_of", "archived_at", "residents", "scans_per_minute", "tubes", "boxes",
        "results", "positives", "overdue", "devices", "coverage", "alarms",
    ]  # fmt: skip
    assert body["archived_at"] is None
    assert len(body["scans_per_minute"]) == 60
    assert all(m["scans"] == 0 for m in body["scans_per_minute"])
    assert set(body["tubes"].values()) == {0}
