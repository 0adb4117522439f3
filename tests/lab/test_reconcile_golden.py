"""A small hand-checked round: every state, the orders, coverage and door lists."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sampling.lab import coverage, doors, reconcile, report, sources
from sampling.lab.archive import materialize
from sampling.lab.register import SCHEMA, rkey


def _h(n: int) -> str:
    return f"{n:016x}"


# Residents 1-12. Household labels: 9 vacant, 10 away, 11 elderly alone,
# 12 home isolation. Tubes: A (1-3) negative, B (4-5) positive, C (6) invalid,
# D (7) missing at intake, E (8) no result yet. 9-12 not bound; 4 re-sampled
# in tube F, which has its own result.
REGISTER = pl.DataFrame(
    {
        "resident": [f"R{n:017d}" for n in range(1, 13)],
        "rhash": [_h(n) for n in range(1, 13)],
        "name": [f"居民{n}" for n in range(1, 13)],
        "phone": [f"1380000{n:04d}" for n in range(1, 13)],
        "street": ["S1"] * 6 + ["S2"] * 6,
        "community": ["C1"] * 6 + ["C2"] * 6,
        "grid": ["G1"] * 6 + ["G2"] * 6,
        "building": ["1", "1", "2", "2", "10", "10", "1", "1", "2", "3", "10", "2"],
        "unit": ["1"] * 12,
        "household": ["101", "101", "201", "201", "101", "102", "101", "102", "101", "101",
                      "101", "301"],
        "labels": ["permanent"] * 8 + ["vacant", "permanent", "elderly_alone",
                                       "home_isolation"],
        "colour": ["green"] * 11 + ["yellow"],
        "away": [False] * 9 + [True, False, False],
    }
).with_columns(rkey())  # fmt: skip
BINDINGS = pl.DataFrame(
    {
        "rhash": [_h(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 4)],
        "tube": ["A", "A", "A", "B", "B", "C", "D", "E", "F"],
        "site": ["P1"] * 9,
        "device": ["d1"] * 9,
        "scanned_at": [3_600_000 * h for h in (1, 1, 1, 2, 2, 2, 3, 3, 5)],
        "purpose": ["pool"] * 8 + ["resample"],
    }
)
JOURNAL = pl.DataFrame(
    {
        "id": ["1-0", "2-0", "3-0", "4-0", "5-0"],
        "ts": [1, 2, 3, 4, 5],
        "k": ["result", "result", "result", "result", "result_held"],
        "d": ["lab1"] * 5,
        "tube": ["A", "B", "C", "F", "A"],
        "outcome": ["negative", "positive", "invalid", "negative", "positive"],
        "ct_orf1ab": ["", "22.5", "", "", "30"],
        "ct_n": ["", "24", "", "", "31"],
        "lab": ["L1"] * 5,
        "tested_at": ["100", "200", "300", "400", "500"],
    }
)
INTAKE = pl.DataFrame(
    {"box": ["X"] * 4, "tube": ["A", "B", "C", "D"],
     "status": ["received", "received", "received", "missing"], "residents": [3, 2, 1, 1]}
)  # fmt: skip


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    arch = tmp_path / "archive" / "r1"
    arch.mkdir(parents=True)
    (tmp_path / "register").mkdir()
    REGISTER.select(list(SCHEMA)).write_parquet(tmp_path / "register" / "register.parquet")
    BINDINGS.write_parquet(arch / "bindings.parquet")
    INTAKE.write_parquet(arch / "intake.parquet")
    materialize(JOURNAL.lazy(), arch)
    return tmp_path


def test_results_materialized_from_result_entries_only(data_dir: Path) -> None:
    got = pl.read_parquet(data_dir / "archive" / "r1" / "results.parquet").sort("tube")
    want = pl.DataFrame(
        {
            "tube": ["A", "B", "C", "F"],
            "outcome": ["negative", "positive", "invalid", "negative"],
            "ct_orf1ab": [None, 22.5, None, None],
            "ct_n": [None, 24.0, None, None],
            "lab": ["L1"] * 4,
            "tested_at": [100, 200, 300, 400],
        }
    )
    assert_frame_equal(got, want)


def test_person_states(data_dir: Path) -> None:
    rnd = sources.scan_round(data_dir, "r1")
    got = reconcile.person_states(rnd.bindings, rnd.results, rnd.intake).collect().sort("rhash")
    want = pl.DataFrame(
        {"rhash": [_h(n) for n in range(1, 9)],
         "state": ["negative"] * 3 + ["positive"] * 2 + ["invalid", "lost", "awaiting"]},
        schema_overrides={"state": reconcile.STATE_DTYPE},
    )  # fmt: skip
    assert_frame_equal(got.select("rhash", "state"), want)
    counts = reconcile.state_counts(reconcile.person_states(rnd.bindings, rnd.results,
                                                            rnd.intake)).collect()  # fmt: skip
    assert counts["residents"].to_list() == [3, 2, 1, 1, 1]


def test_resample_orders_tracked(data_dir: Path) -> None:
    got = report.collect(data_dir, "r1", ["resample_orders"])["resample_orders"]
    got = got.select("priority", "order_state", "state", "name", "resample_tube",
                     "resample_outcome").sort("name")  # fmt: skip
    want = pl.DataFrame(
        {
            "priority": ["urgent", "urgent", "normal", "normal"],
            "order_state": ["resulted", "open", "open", "open"],
            "state": ["positive", "positive", "invalid", "lost"],
            "name": ["居民4", "居民5", "居民6", "居民7"],
            "resample_tube": ["F", None, None, None],
            "resample_outcome": ["negative", None, None, None],
        },
        schema_overrides={"state": reconcile.STATE_DTYPE},
    )
    assert_frame_equal(got, want)


def test_coverage_excludes_vacant_and_away(data_dir: Path) -> None:
    reg = sources.scan_register(data_dir)
    rnd = sources.scan_round(data_dir, "r1")
    got = coverage.coverage(coverage.marked(reg, rnd.bindings), ["street", "grid"]).collect()
    want = pl.DataFrame(
        {"street": ["S1", "S2"], "grid": ["G1", "G2"], "residents": [6, 4], "sampled": [6, 2],
         "missed": [0, 2], "coverage_pct": [100.0, 50.0], "moved": [0, 0], "not_home": [0, 0],
         "refused": [0, 0], "medical": [0, 0]}
    )  # fmt: skip
    assert_frame_equal(got, want)


def test_door_outcomes_change_coverage_and_the_next_list(data_dir: Path) -> None:
    reg = sources.scan_register(data_dir)
    rnd = sources.scan_round(data_dir, "r1")
    found = pl.LazyFrame(
        {"rhash": [_h(11), _h(12), _h(1)], "outcome": ["moved", "refused", "not_home"]}
    )
    marked = coverage.marked(reg, rnd.bindings, found)
    got = coverage.coverage(marked, ["grid"]).collect()
    # G2: 居民11 moved away (out of the denominator), 居民12 refused; 居民1 of G1 was
    # sampled, so what the door said before does not count against G1.
    cols = ("grid", "residents", "sampled", "missed", "moved", "refused", "not_home")
    assert got.select(cols).rows() == [("G1", 6, 6, 0, 0, 0, 0), ("G2", 3, 2, 1, 1, 1, 0)]
    listed = doors.door_list(marked).collect()
    assert listed.select("name", "last_outcome").rows() == [("居民12", "refused")]


def test_door_list_order_and_marks(data_dir: Path) -> None:
    reg = sources.scan_register(data_dir)
    rnd = sources.scan_round(data_dir, "r1")
    got = doors.door_lists(reg, rnd.bindings).collect()
    want = pl.DataFrame(
        {"grid": ["G2", "G2"], "building": ["2", "10"], "household": ["301", "101"],
         "name": ["居民12", "居民11"], "mark": ["door_medical", "home_sampling"]}
    )  # fmt: skip
    assert_frame_equal(got.select("grid", "building", "household", "name", "mark"), want)
    assert got["resident"][0] == "R000**********0012"


def test_summary_states_add_up(data_dir: Path) -> None:
    got = report.collect(data_dir, "r1", report.NAMES)
    summary = report.summary("r1", got)
    assert summary["bound"] == 8 == sum(summary["states"].values())
    assert summary["door_list_sizes"] == {"G2": 2}


def test_missed_in_a_row(data_dir: Path) -> None:
    reg = sources.scan_register(data_dir)
    b1 = pl.LazyFrame(BINDINGS)
    b2 = pl.LazyFrame(BINDINGS.filter(pl.col("rhash") != _h(1)))
    got = coverage.missed_in_a_row(reg, [("r1", b1), ("r2", b2), ("r3", b2)]).collect()
    assert got.select("name", "longest_run", "current_run").rows() == [
        ("居民11", 3, 3), ("居民12", 3, 3), ("居民1", 2, 2),
    ]  # fmt: skip


def test_missing_archive_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="no archive"):
        report.collect(tmp_path, "nope", ["state_counts"])
