"""Turnaround per lab and per street on a hand-built round with known times."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from sampling.lab import turnaround
from sampling.lab.register import rkey

M = 60_000  # one minute in ms
T0 = 1_651_370_400_000


def _h(n: int) -> str:
    return f"{n:016x}"


# Box B1 (lab L1): sealed at 30 min, picked up at 40, received at 100.
# Box B2 (lab L2): sealed at 50, picked up at 80, received at 200.
# T1 (B1) closed at 0, result at 160; T2 (B1) closed at 10, result at 250;
# T3 (B2) closed at 20, result at 320; T4 (B2) closed at 40, no result;
# T5 closed at 5, never boxed. Streets by the residents' majority: T1, T3, T5 in
# S1; T2, T4 in S2 (T3 holds two S1 residents and one S2).
TUBES = pl.LazyFrame(
    {"tube": ["T1", "T2", "T3", "T4", "T5"], "closed_at": [T0 + m * M for m in (0, 10, 20, 40, 5)]}
)
BOX_TUBES = pl.LazyFrame({"box": ["B1", "B1", "B2", "B2"], "tube": ["T1", "T2", "T3", "T4"]})
BOXES = pl.LazyFrame(
    {
        "box": ["B1", "B2"],
        "lab": ["L1", "L2"],
        "sealed_at": [T0 + 30 * M, T0 + 50 * M],
        "picked_up_at": [T0 + 40 * M, T0 + 80 * M],
        "received_at": [T0 + 100 * M, T0 + 200 * M],
    }
)
RESULTS = pl.LazyFrame(
    {
        "tube": ["T1", "T2", "T3"],
        "lab": ["L1", "L1", "L2"],
        "tested_at": [T0 + m * M for m in (160, 250, 320)],
    }
)
BINDINGS = pl.LazyFrame(
    {
        "rhash": [_h(n) for n in range(1, 9)],
        "tube": ["T1", "T1", "T2", "T3", "T3", "T3", "T4", "T5"],
    }
)
REGISTER = (
    pl.DataFrame(
        {
            "rhash": [_h(n) for n in range(1, 9)],
            "street": ["S1", "S1", "S2", "S1", "S2", "S1", "S2", "S1"],
        }
    )
    .with_columns(rkey())
    .lazy()
)


def _times() -> pl.LazyFrame:
    streets = turnaround.tube_streets(BINDINGS, REGISTER)
    return turnaround.tube_times(TUBES, BOX_TUBES, BOXES, RESULTS, streets)


def _want(key: str, rows: dict[str, list[object]]) -> pl.DataFrame:
    cols: dict[str, list[object]] = {key: rows.pop(key), "tubes": rows.pop("tubes")}
    for stage, values in rows.items():
        cols[f"{stage}_median_min"] = [v[0] for v in values]  # type: ignore[index]
        cols[f"{stage}_p90_min"] = [v[1] for v in values]  # type: ignore[index]
    return pl.DataFrame(cols, schema_overrides={"tubes": pl.Int64}).with_columns(
        pl.exclude(key, "tubes").cast(pl.Float64)
    )


def test_minutes_per_tube() -> None:
    got = _times().collect().sort("tube")
    assert got["street"].to_list() == ["S1", "S2", "S1", "S2", "S1"]
    assert got["lab"].to_list() == ["L1", "L1", "L2", "L2", None]
    assert got.select("sealed_min", "picked_up_min", "received_min", "resulted_min").rows() == [
        (30.0, 40.0, 100.0, 160.0),
        (20.0, 30.0, 90.0, 240.0),
        (30.0, 60.0, 180.0, 300.0),
        (10.0, 40.0, 160.0, None),
        (None, None, None, None),
    ]


def test_per_lab() -> None:
    # Medians of two values are their mean; the 90th percentile of two is the larger.
    want = _want(
        "lab",
        {
            "lab": ["L1", "L2"],
            "tubes": [2, 2],
            "sealed": [(25, 30), (20, 30)],
            "picked_up": [(35, 40), (50, 60)],
            "received": [(95, 100), (170, 180)],
            "resulted": [(200, 240), (300, 300)],
        },
    )
    assert_frame_equal(turnaround.by(_times(), "lab").collect(), want)


def test_per_street() -> None:
    want = _want(
        "street",
        {
            "street": ["S1", "S2"],
            "tubes": [3, 2],
            "sealed": [(30, 30), (15, 20)],
            "picked_up": [(50, 60), (35, 40)],
            "received": [(140, 180), (125, 160)],
            "resulted": [(230, 300), (240, 240)],
        },
    )
    assert_frame_equal(turnaround.by(_times(), "street").collect(), want)


def test_slowest_boxes() -> None:
    got = turnaround.slowest_boxes(_times()).collect()
    # B2: first closed at 20, last result at 320, one tube still without a result.
    assert got.select("box", "lab", "tubes", "without_result", "total_min").rows() == [
        ("B2", "L2", 2, 1, 300.0),
        ("B1", "L1", 2, 0, 250.0),
    ]
