"""Charts of a run from Locust's stats history: ``python -m loadtest.charts RUN_DIR``.

Locust's HTML report draws its charts in the browser; a PNG beside the summary
can go into ``docs/`` and be read in a pull request or on paper. Three panels on
one time axis: requests and refusals per second, response time percentiles
(over Locust's recent window, not since the start), and the users running.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only: no display on a server

import matplotlib.pyplot as plt


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "N/A" before the first answer


def _series(rows: list[dict[str, str]], column: str) -> list[float | None]:
    return [_num(r[column]) for r in rows]


def write(run_dir: Path, out: Path | None = None, title: str | None = None) -> Path | None:
    """``charts.png`` in ``run_dir`` (or ``out``); None when there is no history."""
    history = run_dir / "locust_stats_history.csv"
    if not history.exists():
        return None
    with history.open() as f:
        every = list(csv.DictReader(f))
    rows = [r for r in every if r["Name"] == "Aggregated"]
    scans = [r for r in every if r["Name"] == "scan"]
    if len(rows) < 2:
        return None
    t0 = int(rows[0]["Timestamp"])
    minutes = [(int(r["Timestamp"]) - t0) / 60 for r in rows]
    fig, (req, lat, users) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    req.plot(minutes, _series(rows, "Requests/s"), lw=0.8, label="requests/s")
    req.plot(
        minutes,
        _series(rows, "Failures/s"),
        lw=0.8,
        color="tab:red",
        label="turned away or failed /s",
    )
    req.set_ylabel("per second")
    req.legend(loc="upper right")
    for column, colour in (("50%", "tab:green"), ("95%", "tab:orange"), ("99%", "tab:red")):
        lat.plot(
            minutes, _series(rows, column), lw=0.8, color=colour, label=f"all requests {column}"
        )
    if scans:
        s_minutes = [(int(r["Timestamp"]) - t0) / 60 for r in scans]
        lat.plot(
            s_minutes, _series(scans, "99%"), lw=0.8, color="black", ls="--", label="scans 99%"
        )
    lat.axhline(100, color="grey", lw=0.6, ls=":")
    lat.set_ylabel("ms")
    lat.set_yscale("log")
    lat.legend(loc="upper right")
    users.plot(minutes, _series(rows, "User Count"), lw=0.8, color="tab:purple")
    users.set_ylabel("users")
    users.set_xlabel("minutes since start")
    fig.suptitle(title or f"load test: {run_dir.name}")
    fig.tight_layout()
    path = out or run_dir / "charts.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m loadtest.charts RUN_DIR [OUT.png]")
    made = write(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(made or "no stats history in that run directory")
