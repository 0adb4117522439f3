"""`sampling bench live` at a small size: it fills, loads, and prints its figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sampling.lab import synth
from sampling.lab.register import flags_expr


@pytest.mark.slow
def test_bench_live_prints_its_figures() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "sampling.cli", "bench", "live", "--residents", "2000",
         "--seconds", "4", "--archive-every", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["residents"] == 2000
    # 95% of the register, bar the residents it flags (they need single tubes).
    flagged = set(
        synth.generate(2000).register.with_row_index("i").filter(flags_expr() != "")["i"]
    )
    assert out["bound"] == sum(1 for i in range(2000) if i % 20 and i not in flagged) < 1900
    assert out["requests"] > 0
    assert 0 < out["p50_ms"] <= out["p99_ms"] <= out["max_ms"]
    # The served archiver made passes while the load ran: the lag is bounded.
    assert out["archive_lag_s"] is not None and out["archive_lag_s"] < 60
    assert out["scans_per_s"] > 0
