"""The verifier: the ledger against the service's own state, three ways.

1. Redis resident buckets (``{rd:R}:res:<hhhh>``): every scan the ledger says was
   acknowledged (and not undone) must be there, pointing at its tube (else
   ``lost``); every resident there must have been acknowledged (else
   ``unacknowledged``), unless the only request for it went unanswered
   (``ack_unknown``: a request whose answer was lost but which applied).
2. Tube records (``{rd:R}:t:<tube>``): no resident in two tubes or twice in one
   (``doubled``); each tube's member count equals the buckets' count for it, the
   journal's count and the ledger's count (else ``tube_mismatch``).
3. The journal, drained to Parquet and materialized (``bindings.parquet``): the
   same residents in the same tubes as Redis (``journal_missing``,
   ``journal_extra``), none twice (counted in ``doubled``).

Also: a retried operation whose answers differ (``replay_mismatch``), the
``bound`` counter against the buckets (``counter_mismatch``), planned residents
never bound (``unscanned``), boxes whose tube count in Redis differs from the
tubes the ledger saw accepted (``box_mismatch``).
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import polars as pl

from sampling import archive, codes
from sampling.binding import keys
from sampling.binding.tube import TubeRecord
from sampling.boxing import keys as box_keys

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.privacy import ResidentHasher
    from sampling.store.client import AnyRedis

SCHEMA = {
    "d": pl.Utf8,
    "seq": pl.Int64,
    "op": pl.Utf8,
    "k": pl.Utf8,
    "t": pl.Utf8,
    "b": pl.Utf8,
    "r": pl.Utf8,
    "s": pl.Utf8,
    "n": pl.Int64,
    "rp": pl.Boolean,
    "a": pl.Int64,
    "lost": pl.Int64,
    "shed": pl.Int64,
    "h": pl.Int64,
    "up": pl.Int64,
}
BINDING = ("open", "scan", "undo", "close")
_PIPE = 5_000


def read_ledger(directory: Path) -> pl.DataFrame:
    files = sorted(directory.glob("ledger-*.jsonl"))
    frames = [pl.read_ndjson(f, schema=SCHEMA) for f in files if f.stat().st_size]
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)


def _operations(ledger: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One row per (device, seq): the first answer, and how many retries disagreed."""
    # A 400 (a garbled read) is refused before the op log: its seq is used again.
    ledger = ledger.filter(pl.col("h") != 400)
    answered = ledger.filter(pl.col("s") != "unknown")
    per_op = answered.group_by("d", "seq").agg(
        pl.col("s").n_unique().alias("answers"),
        pl.col("s").first(),
        pl.col("k").first(),
        pl.col("t").first(),
        pl.col("r").first(),
        pl.col("b").first(),
        pl.col("n").first(),
    )
    mismatch = per_op.filter(pl.col("answers") > 1).height
    unknown = (
        ledger.filter(pl.col("s") == "unknown")
        .join(answered.select("d", "seq").unique(), on=["d", "seq"], how="anti")
        .unique(["d", "seq"])
        .with_columns(pl.lit(1, pl.UInt32).alias("answers"))
    )
    return pl.concat([per_op, unknown.select(per_op.columns)], how="vertical_relaxed"), mismatch


async def _buckets(redis: AnyRedis, round_id: str) -> dict[bytes, int]:
    """Every pool binding in Redis: (2-byte bucket + 6-byte tail) -> tube serial."""
    out: dict[bytes, int] = {}
    for start in range(0, 65_536, 1_024):
        pipe = redis.pipeline(transaction=False)
        ids = range(start, start + 1_024)
        for b in ids:
            pipe.hgetall(f"{keys.tag(round_id)}:res:{b:04x}")
        for b, fields in zip(ids, await pipe.execute(), strict=True):
            head = b.to_bytes(2, "big")
            for tail, serial in fields.items():
                if len(tail) == 6:  # 'r' + tail is a re-sample binding
                    out[head + tail] = int(serial)
    return out


async def _tubes(redis: AnyRedis, round_id: str) -> dict[str, TubeRecord]:
    found: list[bytes] = [
        k async for k in redis.scan_iter(match=keys.tube(round_id, "*"), count=5_000)
    ]
    out: dict[str, TubeRecord] = {}
    for start in range(0, len(found), _PIPE):
        chunk = found[start : start + _PIPE]
        pipe = redis.pipeline(transaction=False)
        for k in chunk:
            pipe.get(k)
        for k, raw in zip(chunk, await pipe.execute(), strict=True):
            if raw:
                out[k.decode().rpartition(":")[2]] = TubeRecord(raw)
    return out


async def verify(
    redis: AnyRedis,
    round_id: str,
    hasher: ResidentHasher,
    run_dir: Path,
    data_dir: Path,
    planned: list[str] | None = None,
) -> dict[str, Any]:
    ledger = read_ledger(run_dir / "ledger")
    ops, replay_mismatch = _operations(ledger)
    binding = ops.filter(pl.col("k").is_in(BINDING))
    moves = binding.filter(pl.col("k").is_in(["scan", "undo"]))

    # What the ledger says is bound: acknowledged scans minus acknowledged undos.
    expected: dict[bytes, str] = {}
    net: collections.Counter[bytes] = collections.Counter()
    unknown: set[bytes] = set()
    digests: dict[str, bytes] = {}
    for k, s, t, r in moves.select("k", "s", "t", "r").iter_rows():
        if not codes.is_valid(r, codes.CodeKind.RESIDENT):
            continue  # a garbled read, refused before it reached Redis
        h = digests.get(r) or digests.setdefault(r, hasher.digest(r))
        if s == "unknown":
            unknown.add(h)
        elif s == "ok":
            net[h] += 1 if k == "scan" else -1
            if k == "scan":
                expected[h] = t
    expected = {h: t for h, t in expected.items() if net[h] > 0}
    doubled_acks = sum(1 for v in net.values() if v > 1)

    # 1. Redis buckets.
    buckets = await _buckets(redis, round_id)
    lost = sum(1 for h, t in expected.items() if buckets.get(h) != codes.tube_number(t))
    extra = [h for h in buckets if h not in expected]
    ack_unknown = sum(1 for h in extra if h in unknown)
    unacknowledged = len(extra) - ack_unknown

    # 2. Tube records.
    tubes = await _tubes(redis, round_id)
    seen: collections.Counter[bytes] = collections.Counter()
    for rec in tubes.values():
        if rec.purpose == "pool":
            seen.update(h for h, _ in rec.members)
    doubled_tubes = sum(n - 1 for n in seen.values() if n > 1)
    by_serial = collections.Counter(buckets.values())
    by_ledger = collections.Counter(expected.values())

    # 3. The journal.
    report = await archive.drain(redis, round_id, data_dir)
    archive.materialize(data_dir, round_id)
    out_dir = archive.round_dir(data_dir, round_id)
    bound = pl.read_parquet(out_dir / "bindings.parquet").filter(pl.col("purpose") == "pool")
    jcount = dict(bound.group_by("tube").len().iter_rows())
    doubled_journal = bound.height - bound["rhash"].n_unique()
    jset = {(bytes.fromhex(h), t) for h, t in bound.select("rhash", "tube").iter_rows()}
    rset = {
        (h, code) for code, rec in tubes.items() if rec.purpose == "pool" for h, _ in rec.members
    }
    journal_missing, journal_extra = len(rset - jset), len(jset - rset)

    mismatched = []
    for code, rec in tubes.items():
        n = len(rec.members)
        counts = (
            by_serial.get(codes.tube_number(code), 0),
            jcount.get(code, 0),
            by_ledger.get(code, 0),
        )
        if any(c != n for c in counts):
            mismatched.append((code, n, *counts))

    counters = {k.decode(): int(v) for k, v in (await redis.hgetall(keys.count(round_id))).items()}
    counter_mismatch = abs(counters.get("bound", 0) - len(buckets))

    unscanned = 0
    if planned is not None:
        unscanned = sum(1 for r in planned if (digests.get(r) or hasher.digest(r)) not in buckets)

    # Boxing: each box's tubes in Redis against the adds the ledger saw accepted.
    adds = ops.filter((pl.col("k") == "add") & (pl.col("s") == "ok"))
    per_box = dict(adds.group_by("b").len().iter_rows())
    sealed = ops.filter((pl.col("k") == "seal") & (pl.col("s") == "ok")).height
    box_mismatch = 0
    if per_box:
        pipe = redis.pipeline(transaction=False)
        for box in per_box:
            pipe.hlen(box_keys.box_tubes(round_id, box))
        for (_box, n), have in zip(per_box.items(), await pipe.execute(), strict=True):
            box_mismatch += int(have) != n
    results = ops.filter(pl.col("k") == "results")
    results_ok = results.filter(pl.col("s") == "ok")
    taken_in = ops.filter((pl.col("k") == "intake") & (pl.col("s") == "ok")).height
    statuses = dict(binding.filter(pl.col("k") == "scan").group_by("s").len().iter_rows())
    return {
        "lost": lost,
        "doubled": doubled_tubes + doubled_journal + doubled_acks,
        "unacknowledged": unacknowledged,
        "ack_unknown": ack_unknown,
        "tube_mismatch": len(mismatched),
        "journal_missing": journal_missing,
        "journal_extra": journal_extra,
        "replay_mismatch": replay_mismatch,
        "counter_mismatch": counter_mismatch,
        "box_mismatch": box_mismatch,
        "unscanned": unscanned,
        "bound": len(buckets),
        "acknowledged": len(expected),
        "tubes": len(tubes),
        "boxes_sealed": sealed,
        "tubes_boxed": adds.height,
        "journal_entries": report.entries,
        "tubes_taken_in": taken_in,
        "results_reported": int(results_ok["n"].sum() or 0),
        "results_refused_uploads": results.height - results_ok.height,
        "scan_answers": statuses,
        "ledger_lines": ledger.height,
        "retried_ops": ledger.filter(pl.col("a") > 1).height,
        "shed_answers": int(ledger["shed"].sum() or 0),
        "unanswered_attempts": int(ledger["lost"].sum() or 0),
        "mismatched_tubes": mismatched[:10],
    }


PROBLEMS = (
    "lost",
    "doubled",
    "unacknowledged",
    "tube_mismatch",
    "journal_missing",
    "journal_extra",
    "replay_mismatch",
    "counter_mismatch",
    "box_mismatch",
    "unscanned",
)


def clean(result: dict[str, Any]) -> bool:
    return all(result.get(k, 0) == 0 for k in PROBLEMS)
