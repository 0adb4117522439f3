"""A small hand-checked round: every state, the orders, coverage and door lists."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sampling.journal import decode
from sampling.lab import coverage, doors, reconcile, report, sources
from sampling.lab.archive import materialize
from sampling.lab.register import SCHEMA, rkey


def _h(n: int) -> str:
    return f"{n:016x}"


# Residents 1-12. Household labels: 9 vacant, 10 away, 11 elderly alone,
# 12 home isolation. Tubes: A (1-3) negative, B (4-5) positive, C (6) invalid,
# D (7) missing at intake, E (8) no result yet. 9-12 not bound. Re-samples: 4 in
# tube F (negative); 6 in G (invalid), then again in H (no result yet); 7 in I,
# missing at intake too.
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
        "rhash": [_h(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 4, 6, 7, 6)],
        "tube": ["A", "A", "A", "B", "B", "C", "D", "E", "F", "H", "I", "G"],
        "site": ["P1"] * 12,
        "device": ["d1"] * 12,
        "scanned_at": [3_600_000 * h for h in (1, 1, 1, 2, 2, 2, 3, 3, 5, 7, 5, 5)],
        "purpose": ["pool"] * 8 + ["resample"] * 4,
    }
)
JOURNAL = pl.DataFrame(
    {
        "id": ["1-0", "2-0", "3-0", "4-0", "5-0", "6-0"],
        "ts": [1, 2, 3, 4, 5, 6],
        "k": ["result", "result", "result", "result", "result_held", "result"],
        "d": ["lab1"] * 6,
        "tube": ["A", "B", "C", "F", "A", "G"],
        "outcome": ["negative", "positive", "invalid", "negative", "positive", "invalid"],
        "ct_orf1ab": ["", "22.5", "", "", "30", ""],
        "ct_n": ["", "24", "", "", "31", ""],
        "lab": ["L1"] * 6,
        "tested_at": ["100", "200", "300", "400", "500", "600"],
    }
)
INTAKE = pl.DataFrame(
    {"box": ["X"] * 4 + ["Y"] * 2, "tube": ["A", "B", "C", "D", "G", "I"],
     "status": ["received", "received", "received", "missing", "received", "missing"],
     "residents": [3, 2, 1, 1, 1, 1]}
)  # fmt: skip


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    arch = tmp_path / "archive" / "r1"
    arch.mkdir(parents=True)
    (tmp_path / "register").mkdir()
    REGISTER.select(list(SCHEMA)).write_parquet(tmp_path / "register" / "register.parquet")
    BINDINGS.write_parquet(arch / "bindings.parquet")
    INTAKE.write_parquet(arch / "intake.parquet")
    materialize(decode(JOURNAL.lazy()), arch)
    return tmp_path


def test_results_materialized_from_result_entries_only(data_dir: Path) -> None:
    got = pl.read_parquet(data_dir / "archive" / "r1" / "results.parquet").sort("tube")
    want = pl.DataFrame(
        {
            "tube": ["A", "B", "C", "F", "G"],
            "outcome": ["negative", "positive", "invalid", "negative", "invalid"],
            "ct_orf1ab": [None, 22.5, None, None, None],
            "ct_n": [None, 24.0, None, None, None],
            "lab": ["L1"] * 5,
            "tested_at": [100, 200, 300, 400, 600],
        }
    )
    assert_frame_equal(got, want)


def test_person_states_are_the_latest_attempts(data_dir: Path) -> None:
    rnd = sources.scan_round(data_dir, "r1")
    got = reconcile.person_states(rnd.bindings, rnd.results, rnd.intake).collect().sort("rhash")
    # 4: pool positive, re-sample negative; 6: invalid, invalid, awaiting; 7: lost twice.
    want = pl.DataFrame(
        {"rhash": [_h(n) for n in range(1, 9)],
         "tube": ["A", "A", "A", "B", "B", "C", "D", "E"],
         "attempt": [0, 0, 0, 1, 0, 2, 1, 0],
         "state": ["negative"] * 4 + ["positive", "awaiting", "lost", "awaiting"]},
        schema_overrides={"state": reconcile.STATE_DTYPE},
    )  # fmt: skip
    assert_frame_equal(got.select("rhash", "tube", "attempt", "state"), want)
    counts = reconcile.state_counts(reconcile.person_states(rnd.bindings, rnd.results,
                                                            rnd.intake)).collect()  # fmt: skip
    assert counts["residents"].to_list() == [4, 1, 0, 1, 2]


def test_attempts_numbered_in_scan_order(data_dir: Path) -> None:
    rnd = sources.scan_round(data_dir, "r1")
    got = reconcile.attempts(rnd.bindings, rnd.results, rnd.intake).collect()
    six = got.filter(pl.col("rhash") == _h(6)).sort("attempt")
    assert six.select("attempt", "tube", "state").rows() == [
        (0, "C", "invalid"), (1, "G", "invalid"), (2, "H", "awaiting"),
    ]  # fmt: skip


def test_resample_orders_tracked(data_dir: Path) -> None:
    got = report.collect(data_dir, "r1", ["resample_orders"])["resample_orders"]
    got = got.select("priority", "name", "order", "order_state", "state", "tube",
                     "resample_tube", "resample_outcome")  # fmt: skip
    # Urgent first, then by address (building in text order); each failed attempt has
    # its own numbered order, tracked to closure.
    want = pl.DataFrame(
        {
            "priority": ["urgent", "urgent"] + ["normal"] * 4,
            "name": ["居民5", "居民4", "居民6", "居民6", "居民7", "居民7"],
            "order": [1, 1, 1, 2, 1, 2],
            "order_state": ["open", "resulted", "resulted", "sampled", "lost", "open"],
            "state": ["positive", "positive", "invalid", "invalid", "lost", "lost"],
            "tube": ["B", "B", "C", "G", "D", "I"],
            "resample_tube": [None, "F", "G", "H", "I", None],
            "resample_outcome": [None, "negative", "invalid", None, None, None],
        },
        schema_overrides={"state": reconcile.STATE_DTYPE, "order": pl.Int64},
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
