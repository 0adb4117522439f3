"""A synthetic round for benchmarks, tests and the demo: register, bindings, results.

Generated with NumPy in bulk (no per-row Python), shaped like the district of
DOMAIN.md: 8 streets, 92 communities, 336 grids, buildings of units of
households of about 2.5 residents; some vacant homes, residents away, elderly
living alone, isolation. ``coverage`` of the eligible residents are bound 10 to
a tube; nearly every tube has a result, a few are positive or invalid, a few
are missing at intake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from sampling.lab.register import SCHEMA as REGISTER_SCHEMA
from sampling.lab.register import rkey

if TYPE_CHECKING:
    from pathlib import Path

_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田")
_GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕")
T0_MS = 1_651_370_400_000  # 2022-05-01 02:00 UTC, 10:00 in Zhengzhou


@dataclass(frozen=True)
class Synthetic:
    register: pl.DataFrame
    bindings: pl.DataFrame
    tubes: pl.DataFrame
    results: pl.DataFrame
    intake: pl.DataFrame


def _hex16(values: np.ndarray) -> pl.Series:
    raw = values.astype(">u8").tobytes().hex().encode()
    return pl.Series(np.frombuffer(raw, dtype="S16")).cast(pl.String)


def generate(residents: int, *, seed: int = 7, coverage: float = 0.95, pool: int = 10) -> Synthetic:
    rng = np.random.default_rng(seed)
    n = residents
    idx = np.arange(n, dtype=np.int64)
    grid = (idx * 336) // n
    household = idx * 10 // 25  # ~2.5 residents a household
    hh_in_grid = household - household[np.searchsorted(grid, grid)]
    labels_pick = rng.random(n)
    labels = np.select(
        [labels_pick < 0.02, labels_pick < 0.04, labels_pick < 0.05, labels_pick < 0.055],
        ["vacant", "elderly_alone", "disabled", "home_isolation"],
        "permanent",
    )
    colour = np.select([labels_pick > 0.998, labels_pick > 0.996], ["red", "yellow"], "green")
    away = rng.random(n) < 0.02
    rhash = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) | (
        rng.integers(0, 2, n, dtype=np.int64).astype(np.uint64) << np.uint64(63)
    )
    register = pl.DataFrame(
        {
            "resident": pl.Series(idx + 110105199001010000).cast(pl.String),
            "rhash": _hex16(rhash),
            "name": pl.Series(np.array(_SURNAMES)[idx % len(_SURNAMES)])
            + pl.Series(np.array(_GIVEN)[(idx // 7) % len(_GIVEN)]),
            "phone": pl.Series(13_800_000_000 + idx).cast(pl.String),
            "street": pl.Series(grid * 8 // 336).cast(pl.String).str.pad_start(2, "0"),
            "community": pl.Series(grid * 92 // 336).cast(pl.String).str.pad_start(3, "0"),
            "grid": pl.Series(grid).cast(pl.String).str.pad_start(4, "0"),
            "building": pl.Series(hh_in_grid // 24 + 1).cast(pl.String),
            "unit": pl.Series((hh_in_grid // 8) % 3 + 1).cast(pl.String),
            "household": pl.Series((hh_in_grid % 8) // 2 * 100 + 101 + hh_in_grid % 2).cast(
                pl.String
            ),
            "labels": labels,
            "colour": colour,
            "away": away,
        }
    ).with_columns(
        ("S" + pl.col("street")).alias("street"),
        ("C" + pl.col("community")).alias("community"),
        ("G" + pl.col("grid")).alias("grid"),
    )
    register = register.with_columns(rkey()).select(
        [pl.col(c).cast(t) for c, t in REGISTER_SCHEMA.items()]  # keep the stored schema
    )
    eligible = (labels != "vacant") & ~away
    sampled = eligible & (rng.random(n) < coverage)
    who = np.flatnonzero(sampled)
    rng.shuffle(who)
    m = who.size
    tube_no = np.arange(m) // pool
    ntubes = int(tube_no[-1]) + 1 if m else 0
    tube_codes = pl.Series(10_000_000_000 + np.arange(ntubes)).cast(pl.String)
    tube_codes = "T" + tube_codes + "0"  # the shape of a tube code; checks are not benched
    scanned = T0_MS + np.sort(rng.integers(0, 12 * 3_600_000, m))
    site_of_tube = rng.integers(0, 600, ntubes)
    bindings = pl.DataFrame(
        {
            "rhash": register["rhash"].gather(who),
            "tube": tube_codes.gather(tube_no),
            "site": pl.Series(site_of_tube[tube_no]).cast(pl.String),
            "device": pl.Series(site_of_tube[tube_no]).cast(pl.String),
            "scanned_at": scanned,
            "purpose": pl.repeat("pool", m, eager=True),
        }
    )
    tubes = bindings.group_by("tube", maintain_order=True).agg(
        pl.col("site").first(),
        pl.col("device").first(),
        pl.lit(pool).alias("capacity"),
        pl.lit("pool").alias("purpose"),
        pl.col("scanned_at").min().alias("opened_at"),
        pl.col("scanned_at").max().alias("closed_at"),
        pl.len().cast(pl.Int64).alias("count"),
    )
    fate = rng.random(ntubes)
    outcome = np.select([fate < 0.001, fate < 0.004], ["positive", "invalid"], "negative")
    resulted = fate < 0.98
    missing = (fate >= 0.98) & (fate < 0.985)
    ct = np.where(outcome == "positive", rng.uniform(18, 36, ntubes), np.nan)
    results = pl.DataFrame(
        {
            "tube": tube_codes,
            "outcome": outcome,
            "ct_orf1ab": ct,
            "ct_n": ct + 1.0,
            "lab": pl.Series(rng.integers(0, 6, ntubes)).cast(pl.String),
            "tested_at": tubes["closed_at"] + rng.integers(3_600_000, 8 * 3_600_000, ntubes),
        }
    ).with_columns(pl.col("ct_orf1ab", "ct_n").fill_nan(None), ("L" + pl.col("lab")).alias("lab"))
    results = results.filter(pl.Series(resulted))
    intake = pl.DataFrame(
        {
            "box": pl.Series(np.arange(ntubes) // 50).cast(pl.String),
            "tube": tube_codes,
            "status": np.where(missing, "missing", "received"),
            "residents": tubes["count"],
        }
    ).with_columns(("B" + pl.col("box")).alias("box"))
    return Synthetic(register, bindings, tubes, results, intake)


def write(data: Synthetic, data_dir: Path, round_id: str) -> None:
    """Lay the round out as the archiver and the register import would."""
    reg = data_dir / "register"
    arch = data_dir / "archive" / round_id
    reg.mkdir(parents=True, exist_ok=True)
    arch.mkdir(parents=True, exist_ok=True)
    data.register.write_parquet(reg / "register.parquet")
    data.bindings.write_parquet(arch / "bindings.parquet")
    data.tubes.write_parquet(arch / "tubes.parquet")
    data.results.write_parquet(arch / "results.parquet")
    data.intake.write_parquet(arch / "intake.parquet")
