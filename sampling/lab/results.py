"""Storing lab results in the round's slot, and reading back what is held.

:meth:`LabResults.ingest` sends checked rows to ``record.lua`` in chunks; each
chunk is one atomic step that stores, deduplicates, holds conflicts, queues
orphans and writes the journal entries. A dry run runs the same script in its
classify-only mode, so it answers exactly what the real import would do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampling.errors import Forbidden, NotFound
from sampling.lab import keys
from sampling.lab.models import (
    HeldResult,
    IngestReport,
    LabResult,
    OrphanResult,
    RowOutcome,
    RowStatus,
)
from sampling.store.scripts import Scripts

if TYPE_CHECKING:
    from sampling.auth.models import Device
    from sampling.lab.parse import Parsed
    from sampling.store.client import AnyRedis

#: Results per script call: long enough to amortise the round trip, short enough
#: that one call holds the server for well under a millisecond or two.
CHUNK = 500
_ROLES = ("lab", "admin")


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class LabResults:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._scripts = Scripts(redis, "sampling.lab", ("record",))

    async def ingest(
        self, round_id: str, parsed: Parsed, *, device: str, dry_run: bool = False
    ) -> IngestReport:
        """Store the good rows of ``parsed``; report every row's fate."""
        rows: list[RowOutcome] = [
            RowOutcome(row=p.row, tube=p.value, status="refused", reason=p.reason)
            for p in parsed.problems
            if p.row > 0
        ]
        tally: dict[RowStatus, int] = {"stored": 0, "duplicate": 0, "held": 0, "orphan": 0}
        for start in range(0, len(parsed.good), CHUNK):
            chunk = parsed.good[start : start + CHUNK]
            statuses = await self._record(round_id, [r for _, r in chunk], device, dry_run)
            for (n, res), status in zip(chunk, statuses, strict=True):
                tally[status] += 1
                rows.append(RowOutcome(row=n, tube=res.tube, status=status))
        rows.sort(key=lambda o: o.row)
        accepted = sum(tally.values())
        return IngestReport(
            round=round_id,
            dry_run=dry_run,
            rows_in=parsed.rows_in,
            accepted=accepted,
            refused=parsed.refused,
            problems=parsed.problems,
            rows=rows,
            **tally,
        )

    async def _record(
        self, round_id: str, results: list[LabResult], device: str, dry_run: bool
    ) -> list[RowStatus]:
        ks = [
            keys.meta(round_id),
            keys.result(round_id),
            keys.review(round_id),
            keys.orphans(round_id),
            keys.journal(round_id),
            keys.count(round_id),
            keys.awaiting_result(round_id),
            keys.positives(round_id),
        ]
        args: list[str | int] = [device, "1" if dry_run else "0"]
        for res in results:
            ks.append(keys.tube(round_id, res.tube))
            args += [
                res.tube,
                res.packed(),
                res.outcome,
                "" if res.ct_orf1ab is None else f"{res.ct_orf1ab:g}",
                "" if res.ct_n is None else f"{res.ct_n:g}",
                res.lab,
                res.tested_at,
            ]
        reply = await self._scripts.run("record", ks, args)
        words = [_text(w) for w in reply]
        if words == ["round_not_found"]:
            raise NotFound(f"no round {round_id}", round=round_id)
        return words  # type: ignore[return-value]

    # -- reads --------------------------------------------------------------------------

    async def result(self, round_id: str, tube: str) -> LabResult | None:
        raw = await self._redis.hget(keys.result(round_id), tube)
        return None if raw is None else LabResult.unpack(tube, _text(raw))

    async def held(self, round_id: str) -> list[HeldResult]:
        raw = await self._redis.hgetall(keys.review(round_id))
        out: list[HeldResult] = []
        for field, at in sorted(raw.items()):
            tube, _, packed = _text(field).partition("|")
            out.append(
                HeldResult(
                    tube=tube,
                    stored=await self.result(round_id, tube),
                    held=LabResult.unpack(tube, packed),
                    received_at=int(at),
                )
            )
        return out

    async def orphans(self, round_id: str) -> list[OrphanResult]:
        raw = await self._redis.hgetall(keys.orphans(round_id))
        items = sorted(raw.items())
        return [OrphanResult(result=LabResult.unpack(_text(t), _text(p))) for t, p in items]

    async def counters(self, round_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(keys.count(round_id))
        return {_text(k): int(v) for k, v in raw.items()}


def check_lab_device(device: Device, parsed: Parsed) -> None:
    """A lab device reports only its own lab's results; an admin reports any lab's."""
    if device.role not in _ROLES:
        raise Forbidden(f"a {device.role} device cannot report results")
    if device.role == "lab" and device.lab:
        others = sorted({r.lab for _, r in parsed.good if r.lab != device.lab})
        if others:
            raise Forbidden(
                f"this device reports for lab {device.lab}, not {', '.join(others)}",
                labs=others,
            )
