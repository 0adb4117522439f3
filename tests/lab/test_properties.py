"""Properties of reconciliation on generated rounds, and risk flags reaching the binding core."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sampling.lab import coverage, doors, reconcile, synth
from sampling.lab.register import import_register, push_risk
from sampling.privacy import ResidentHasher
from sampling.settings import Settings
from tests.conftest import SECRET, Api, resident, tube


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=200, max_value=3000),
    seed=st.integers(min_value=0, max_value=10_000),
    share=st.floats(min_value=0.0, max_value=1.0),
    pool=st.sampled_from([1, 5, 10, 20]),
)
def test_states_add_up_and_door_lists_are_right(n: int, seed: int, share: float, pool: int) -> None:
    data = synth.generate(n, seed=seed, coverage=share, pool=pool)
    reg, b = data.register.lazy(), data.bindings.lazy()
    states = reconcile.person_states(b, data.results.lazy(), data.intake.lazy())
    marked = coverage.marked(reg, b)
    counts, cov, door, st_ = pl.collect_all(
        [reconcile.state_counts(states), coverage.coverage(marked, ["grid"]),
         doors.door_list(marked), states]
    )  # fmt: skip
    # Every bound resident in exactly one state; the states add up to the number bound.
    assert counts["residents"].sum() == data.bindings.height == st_["rhash"].n_unique()
    assert (cov["coverage_pct"] <= 100).all() and (cov["sampled"] <= cov["residents"]).all()
    masked = data.register.with_columns(doors.mask("resident").alias("masked"))
    listed = masked.join(door.select(pl.col("resident").alias("masked")), on="masked")
    # Nobody sampled is on a door list; vacant homes and residents away never are.
    assert listed.join(data.bindings, on="rhash", how="semi").height == 0
    assert not listed["labels"].str.contains("vacant").any()
    assert not listed["away"].any()
    assert door.height == cov["missed"].sum()


def test_register_risk_flags_reach_binding(api: Api, settings: Settings, tmp_path: Path) -> None:
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    path = tmp_path / "reg.csv"
    path.write_text(
        "resident,name,street,community,grid,building,unit,household,labels,colour\n"
        f"{resident(1)},甲,S,C,G,1,1,1,,yellow\n{resident(2)},乙,S,C,G,1,1,2,home isolation,\n"
        f"{resident(3)},丙,S,C,G,1,1,3,,\n",
        encoding="utf-8",
    )
    _, flags = import_register(path, ResidentHasher(bytes.fromhex(SECRET)), tmp_path)
    binder = api.client.app.state.services.binder

    async def push() -> int:
        return await push_risk(binder, "r1", flags)

    assert api.client.blocking_portal.call(push) == 2  # type: ignore[union-attr]
    assert api.open(tok, tube(1)).status_code == 201
    assert api.scan(tok, tube(1), resident(3)).status_code == 200
    for n in (1, 2):
        refused = api.scan(tok, tube(1), resident(n))
        assert refused.status_code == 409
        assert refused.json()["code"] == "risk_needs_single_tube"
    assert asyncio.iscoroutinefunction(push)
