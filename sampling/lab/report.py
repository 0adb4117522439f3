"""The round's report: every frame the CLI, the API and the demo show, built lazily.

:func:`frames` wires the loaders to the transforms; nothing is read until a caller
collects the frames it needs (``pl.collect_all`` shares the common scans and
joins). :func:`summary` turns the collected small frames into the JSON summary
whose states add up to the number bound.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from sampling import archive
from sampling.lab import coverage, doors, reconcile, sources, turnaround
from sampling.localtime import stamp

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

#: The report's frames, by name.
NAMES: Final = (
    "states", "state_counts", "resample_orders", "coverage_street", "coverage_community",
    "coverage_grid", "coverage_hourly", "doors", "door_sizes", "turnaround_lab",
    "turnaround_street", "slowest_boxes", "missed_in_a_row",
)  # fmt: skip
#: Frames that carry names and phones: only for roles that need them.
PERSONAL: Final = frozenset({"resample_orders", "doors", "missed_in_a_row"})
#: Roles that see personal frames: the district admin, and a grid team (its own grid only).
PERSONAL_ROLES: Final = frozenset({"admin", "grid"})


_ROUND_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class ReportError(Exception):
    pass


def frames(data_dir: Path, round_id: str) -> dict[str, pl.LazyFrame]:
    rnd = sources.scan_round(data_dir, round_id)
    register = sources.scan_register(data_dir)
    states = reconcile.person_states(rnd.bindings, rnd.results, rnd.intake)
    tries = reconcile.attempts(rnd.bindings, rnd.results, rnd.intake)
    marked = coverage.marked(register, rnd.bindings, rnd.door_outcomes)
    door_list = doors.door_list(marked)
    times = turnaround.tube_times(
        rnd.tubes,
        rnd.box_tubes,
        rnd.boxes,
        rnd.results,
        turnaround.tube_streets(rnd.bindings, register),
    )
    rounds = [r for r in sources.archived_rounds(data_dir)]
    if round_id in rounds:
        rounds = rounds[: rounds.index(round_id) + 1]
    history = [(r, sources.scan_round(data_dir, r).bindings) for r in rounds]
    return {
        "states": states,
        "state_counts": reconcile.state_counts(states),
        "resample_orders": reconcile.resample_orders(tries, rnd.results, register),
        "coverage_street": coverage.coverage(marked, ["street"]),
        "coverage_community": coverage.coverage(marked, ["street", "community"]),
        "coverage_grid": coverage.coverage(marked, ["street", "community", "grid"]),
        "coverage_hourly": coverage.hourly(register, rnd.bindings),
        "doors": door_list,
        "door_sizes": doors.sizes(door_list),
        "turnaround_lab": turnaround.by(times, "lab"),
        "turnaround_street": turnaround.by(times, "street"),
        "slowest_boxes": turnaround.slowest_boxes(times),
        "missed_in_a_row": coverage.missed_in_a_row(register, history),
    }


def collect(data_dir: Path, round_id: str, names: Iterable[str]) -> dict[str, pl.DataFrame]:
    """Collect the named frames together (one pass, shared sub-plans)."""
    # A round id names a folder: '..' or a slash must never walk out of the archive.
    # (The message names no server path: it reaches API clients.)
    if not _ROUND_ID.fullmatch(round_id):
        raise ReportError(f"no round {round_id[:40]!r}: a round id is a-z, 0-9 and -")
    if not (sources.archive_dir(data_dir, round_id) / "bindings.parquet").exists():
        raise ReportError(f"round {round_id} has no archive yet: run `sampling archive` first")
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in NAMES]
    if unknown:
        raise ReportError(f"no report named {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    built = frames(data_dir, round_id)
    return dict(zip(wanted, pl.collect_all([built[n] for n in wanted]), strict=True))


def as_of(data_dir: Path, round_id: str) -> float | None:
    """The data time of the round's archived tables (every change before it is in);
    None for tables no pass stamped."""
    return archive.as_of(data_dir, round_id)


def as_of_line(epoch: float | None, tz: str) -> str:
    """``数据截至 as of 2026-12-02 09:14:05``, for CLI output, PDF titles and headers."""
    when = stamp(epoch, tz) if epoch is not None else "unknown (run `sampling archive`)"
    return f"数据截至 as of {when}"


def summary(
    round_id: str, got: dict[str, pl.DataFrame], *, as_of: float | None = None
) -> dict[str, Any]:
    """The round in numbers; ``states`` always add up to ``bound``; ``as_of`` is the
    data time of the archived tables it was built from (epoch seconds or null)."""
    counts = got["state_counts"]
    states = dict(zip(counts["state"].cast(pl.String), counts["residents"], strict=True))
    bound = int(got["states"].height) if "states" in got else sum(states.values())
    if sum(states.values()) != bound:
        raise ReportError(f"states add up to {sum(states.values())}, not {bound} bound")
    out: dict[str, Any] = {"round": round_id, "as_of": as_of, "bound": bound, "states": states}
    if "resample_orders" in got:
        orders = got["resample_orders"]
        out["resample_orders"] = orders.height
        out["resample_orders_by_state"] = dict(
            orders.group_by("order_state").len().sort("order_state").iter_rows()
        )
    if "coverage_community" in got:
        out["coverage_by_community"] = {
            c: p for c, p in got["coverage_community"].select("community", "coverage_pct").rows()
        }
    if "coverage_street" in got:
        cs = got["coverage_street"]
        residents, sampled = int(cs["residents"].sum()), int(cs["sampled"].sum())
        out["coverage"] = {
            "residents": residents,
            "sampled": sampled,
            "pct": round(100.0 * sampled / residents, 2) if residents else 0.0,
        }
    if "door_sizes" in got:
        out["door_list_sizes"] = dict(got["door_sizes"].select("grid", "total").iter_rows())
    return out
