"""The outage's figures, from the timings the Locust workers wrote (``surge/*.jsonl``).

Each line is one single scan of a handheld that stayed online (``k`` scan) or one
first upload of a batch carrying operations queued while the network was cut
(``k`` batch, ``n`` of them): ``t0`` when the handheld first sent it, ``t1`` when
the answer came (after every retry, shed ones included), wall-clock seconds.

* ``outage_ops``: operations the cut handhelds queued and uploaded.
* ``drain_seconds``: from the first such upload to the answer of the last one,
  the moment the last queued operation had been applied.
* ``p99_scan_ms_during_drain``: the sampler's wait for a single scan of a
  handheld that stayed online, over the scans answered inside the drain.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least ``q`` % of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(run_dir: Path) -> dict[str, Any]:
    scans: list[tuple[float, float]] = []
    batches: list[tuple[float, float, int]] = []
    for path in sorted((run_dir / "surge").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["k"] == "scan":
                scans.append((row["t0"], row["t1"]))
            elif row["h"] == 200:
                batches.append((row["t0"], row["t1"], row["n"]))
    out: dict[str, Any] = {
        "outage_ops": sum(n for _, _, n in batches),
        "outage_batches": len(batches),
        "drain_seconds": None,
        "p99_scan_ms_during_drain": None,
        "scans_during_drain": 0,
    }
    if batches:
        first = min(t0 for t0, _, _ in batches)
        last = max(t1 for _, t1, _ in batches)
        during = [(t1 - t0) * 1000 for t0, t1 in scans if first <= t1 <= last]
        waits = percentile(during, 99)
        out.update(
            drain_seconds=round(last - first, 1),
            p99_scan_ms_during_drain=None if waits is None else round(waits, 1),
            scans_during_drain=len(during),
        )
    return out
