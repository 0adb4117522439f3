"""Properties of reconciliation on generated rounds, and risk flags reaching the binding core."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sampling.lab import coverage, doors, reconcile, sources, synth
from sampling.lab.register import SCHEMA as REGISTER_SCHEMA
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


_OUTCOME = st.sampled_from(["negative", "positive", "invalid", "lost", "awaiting"])


@settings(max_examples=40, deadline=None)
@given(
    chains=st.lists(
        st.tuples(
            st.sampled_from(["negative", "positive", "invalid", "lost", "awaiting"]),
            st.lists(_OUTCOME, max_size=4),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_each_resident_one_state_the_latest_attempts(
    chains: list[tuple[str, list[str]]],
) -> None:
    """Random chains of re-sample attempts: each resident has exactly one state, its
    latest attempt's, and every failed attempt has exactly one numbered order."""
    rows: list[dict[str, object]] = []
    results: list[dict[str, object]] = []
    lost: list[str] = []
    for person, (pool, again) in enumerate(chains):
        for n, outcome in enumerate([pool, *again]):
            code = f"T{person:04d}{n}"
            rows.append({"rhash": f"{person:016x}", "tube": code, "site": "S", "device": "d",
                         "scanned_at": 1000 * (n + 1) + person,
                         "purpose": "pool" if n == 0 else "resample"})  # fmt: skip
            if outcome == "lost":
                lost.append(code)
            elif outcome != "awaiting":
                results.append({"tube": code, "outcome": outcome, "ct_orf1ab": None,
                                "ct_n": None, "lab": "L", "tested_at": 1})  # fmt: skip
    # Scan order is not table order: the archiver's rows come in any order.
    bindings = pl.DataFrame(rows).sample(fraction=1.0, shuffle=True, seed=len(rows)).lazy()
    res = pl.DataFrame(results, schema=sources.SCHEMAS["results"]).lazy()
    intake = pl.DataFrame(
        {"box": ["X"] * len(lost), "tube": lost, "status": ["missing"] * len(lost),
         "residents": [1] * len(lost)}, schema=sources.SCHEMAS["intake"],
    ).lazy()  # fmt: skip
    register = pl.LazyFrame(schema=REGISTER_SCHEMA)
    states, orders = pl.collect_all(
        [reconcile.person_states(bindings, res, intake),
         reconcile.resample_orders(reconcile.attempts(bindings, res, intake), res, register)]
    )  # fmt: skip
    assert states.height == len(chains) == states["rhash"].n_unique()
    by_person = dict(zip(states["rhash"], states["state"].cast(pl.String), strict=True))
    failed = 0
    for person, (pool, again) in enumerate(chains):
        latest = [pool, *again][-1]
        assert by_person[f"{person:016x}"] == latest
        steps = [pool, *again]
        failed += sum(
            1
            for n, o in enumerate(steps)
            if o in ("invalid", "lost") or (n == 0 and o == "positive")
        )
    assert orders.height == failed
    # an order is open only when it is the resident's last and nothing was bound for it
    for (rhash,), group in orders.group_by("rhash"):
        group = group.sort("order")
        assert group["order"].to_list() == sorted(set(group["order"].to_list()))
        assert "open" not in group["order_state"].to_list()[:-1]
        person = int(str(rhash), 16)
        assert group["order"].max() <= len(chains[person][1]) + 1
