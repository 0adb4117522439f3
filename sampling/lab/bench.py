"""``sampling bench reconcile``: the whole reconciliation of a round, timed.

A round of ``--residents`` people is generated (register, bindings 10 to a tube,
results, intake; not timed) into a temporary directory by a child process, so
the parent's peak RSS is the reconciliation's own. Then the reconciliation runs
from the Parquet files - person states, coverage per grid, door lists - once in
Polars (the package's own transforms) and once written plainly in pandas. Each
is run ``--repeat`` times and the fastest run counts: the machine is shared, and
the minimum is the estimate least disturbed by other processes. The last line
printed is one JSON object.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import msgspec
import numpy as np
import pandas as pd
import polars as pl

from sampling.lab import coverage, doors, reconcile, sources, synth

ROUND = "bench"


def _generate(residents: int, data_dir: str) -> None:
    synth.write(synth.generate(residents), Path(data_dir), ROUND)


def run_polars(data_dir: Path) -> list[pl.DataFrame]:
    rnd = sources.scan_round(data_dir, ROUND)
    register = sources.scan_register(data_dir)
    states = reconcile.person_states(rnd.bindings, rnd.results, rnd.intake)
    marked = coverage.marked(register, rnd.bindings)
    return pl.collect_all(
        [
            reconcile.state_counts(states),
            coverage.coverage(marked, ["grid"]),
            doors.door_list(marked),
        ]
    )


def run_pandas(data_dir: Path) -> list[pd.DataFrame]:
    base = sources.archive_dir(data_dir, ROUND)
    reg = pd.read_parquet(sources.register_path(data_dir))
    bindings = pd.read_parquet(base / "bindings.parquet")
    results = pd.read_parquet(base / "results.parquet")
    intake = pd.read_parquet(base / "intake.parquet")

    pool = bindings[bindings["purpose"] == "pool"]
    lost = intake[intake["status"].isin(["missing", "damaged"])].drop_duplicates("tube")
    st = pool.merge(results[["tube", "outcome"]], on="tube", how="left").merge(
        lost[["tube", "status"]], on="tube", how="left"
    )
    st["state"] = np.where(
        st["outcome"].notna(), st["outcome"], np.where(st["status"].notna(), "lost", "awaiting")
    )
    counts = st.groupby("state").size().reindex(list(reconcile.STATES), fill_value=0)

    eligible = reg[~reg["labels"].str.contains("vacant") & ~reg["away"]].copy()
    eligible["sampled"] = eligible["rhash"].isin(pool["rhash"])
    cov = eligible.groupby("grid").agg(residents=("rhash", "size"), sampled=("sampled", "sum"))
    cov["coverage_pct"] = (100.0 * cov["sampled"] / cov["residents"]).round(2)

    missed = eligible[~eligible["sampled"]].copy()
    labels = missed["labels"]
    missed["mark"] = np.where(
        labels.str.contains("home_isolation"),
        "door_medical",
        np.where(
            labels.str.contains("elderly_alone") | labels.str.contains("disabled"),
            "home_sampling",
            "reminder",
        ),
    )
    missed["resident"] = missed["resident"].str[:4] + "**********" + missed["resident"].str[-4:]
    for col in ("building", "unit", "household"):
        missed["_" + col] = pd.to_numeric(missed[col].str.extract(r"(\d+)")[0], errors="coerce")
    missed = missed.sort_values(
        ["grid", "_building", "building", "_unit", "unit", "_household", "household", "name"]
    )[list(doors.COLUMNS)]
    return [counts.reset_index(), cov.reset_index(), missed]


def _best(fn: Any, data_dir: Path, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(data_dir)
        best = min(best, time.perf_counter() - start)
    return best, out


def bench(residents: int, repeat: int = 3, pandas_repeat: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sampling-bench-") as tmp:
        data_dir = Path(tmp)
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=_generate, args=(residents, tmp))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise click.ClickException("generating the synthetic round failed")
        seconds, (counts, cov, door) = _best(run_polars, data_dir, repeat)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pandas_seconds, (pcounts, pcov, pdoor) = _best(run_pandas, data_dir, pandas_repeat)
    bound = int(counts["residents"].sum())
    # The two must agree, or the comparison means nothing.
    if (
        counts["residents"].to_list() != [int(x) for x in pcounts[0]]
        or door.height != len(pdoor)
        or int(cov["sampled"].sum()) != int(pcov["sampled"].sum())
    ):
        raise click.ClickException("Polars and pandas disagree: the benchmark is invalid")
    return {
        "residents": residents,
        "bound": bound,
        "states": dict(zip(counts["state"].cast(pl.String), counts["residents"], strict=True)),
        "grids": cov.height,
        "door_list_rows": door.height,
        "seconds": round(seconds, 3),
        "pandas_seconds": round(pandas_seconds, 3),
        "ratio": round(pandas_seconds / seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "runs": repeat,
        "pandas_runs": pandas_repeat,
        "threads": pl.thread_pool_size(),
    }


@click.command("reconcile")
@click.option("--residents", type=click.IntRange(min=1000), default=4_400_000, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Polars runs; the fastest counts.")  # fmt: skip
@click.option("--pandas-repeat", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
def bench_reconcile_command(residents: int, repeat: int, pandas_repeat: int, as_json: bool) -> None:
    """Time the reconciliation of a synthetic round (Polars against plain pandas)."""
    if not as_json:
        click.echo(f"generating a round of {residents:,} residents (not timed) ...", err=True)
    out = bench(residents, repeat, pandas_repeat)
    if not as_json:
        click.echo(
            f"polars {out['seconds']} s, pandas {out['pandas_seconds']} s, "
            f"ratio {out['ratio']}, peak RSS {out['peak_rss_mb']} MB",
            err=True,
        )
    sys.stdout.write(msgspec.json.encode(out).decode() + "\n")
