"""The decode benchmark: our pipeline against each engine alone, on the same photos.

Photos come from :mod:`sampling.scan.synth` with a seed, so a run is
repeatable; conditions cycle so every condition gets the same share. A photo
counts as decoded only when the expected text is among the *valid* codes read.
zxing-cpp and ZBar are each given the raw photo once, with their default
settings; our pipeline gets the same photo and its time budget.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from sampling import codes
from sampling.scan import engines, pipeline, synth

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]

DEFAULT_COUNT: Final = 520
DEFAULT_SEED: Final = 2022
METHODS: Final = ("zxing", "zbar", "ours")


def _timed(f: Callable[[], list[str]]) -> tuple[list[str], float]:
    t = time.perf_counter()
    texts = f()
    return texts, (time.perf_counter() - t) * 1000


def _engine_texts(reads: list[engines.Read]) -> list[str]:
    return [r.text for r in reads if codes.is_valid(r.text)]


def run_one(img: Gray, budget_ms: float) -> dict[str, tuple[list[str], float]]:
    """Valid texts read and milliseconds taken, per method, for one photo."""
    return {
        "zxing": _timed(lambda: _engine_texts(engines.zxing(img))),
        "zbar": _timed(lambda: _engine_texts(engines.zbar(img))),
        "ours": _timed(
            lambda: [c.text for c in pipeline.decode(img, budget_ms=budget_ms).codes if c.valid]
        ),
    }


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates overall, per condition and under glare, and time percentiles, per method."""
    out: dict[str, Any] = {"count": len(rows)}
    conditions = sorted({r["condition"] for r in rows}, key=synth.CONDITIONS.index)
    glare = [r for r in rows if "glare" in r["condition"]]
    for m in METHODS:
        key = "zbar" if m == "zbar" else m
        out[f"rate_{key}"] = round(sum(r[m] for r in rows) / max(len(rows), 1), 4)
        out[f"glare_rate_{key}"] = round(sum(r[m] for r in glare) / max(len(glare), 1), 4)
        ms = [r[f"{m}_ms"] for r in rows]
        out[f"median_ms_{key}"] = round(statistics.median(ms), 2) if ms else 0.0
        out[f"p95_ms_{key}"] = round(_pct(ms, 95), 2)
    out["glare_gain"] = round(
        out["glare_rate_ours"] - max(out["glare_rate_zxing"], out["glare_rate_zbar"]), 4
    )
    per: dict[str, dict[str, float | int]] = {}
    for c in conditions:
        sel = [r for r in rows if r["condition"] == c]
        per[c] = {"n": len(sel)} | {m: round(sum(r[m] for r in sel) / len(sel), 4) for m in METHODS}
    out["per_condition"] = per
    return out


def run(
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    budget_ms: float = pipeline.DEFAULT_BUDGET_MS,
    progress: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per photo: its condition and kind; per method, decoded or not, and ms."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(count):
        condition = synth.CONDITIONS[i % len(synth.CONDITIONS)]
        s = synth.sample(rng, condition)
        row: dict[str, Any] = {"condition": condition, "kind": s.kind.value}
        for m, (texts, ms) in run_one(s.image, budget_ms).items():
            row[m] = s.text in texts
            row[f"{m}_ms"] = ms
        rows.append(row)
        if progress is not None:
            progress()
    return rows
