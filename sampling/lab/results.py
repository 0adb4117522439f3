"""Storing lab results in the round's slot, and reading back what is held.

:meth:`LabResults.ingest` sends checked rows to ``record.lua`` in chunks; each
chunk is one atomic step that stores, deduplicates, holds conflicts, queues
orphans and writes the journal entries. A dry run runs the same script in its
classify-only mode, so it answers exactly what the real import would do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampling.boxing import keys as boxing_keys
from sampling.errors import Forbidden, NotFound
from sampling.lab import keys
from sampling.lab.models import (
    HeldResult,
    IngestReport,
    LabResult,
    OrphanResult,
    RowOutcome,
    RowProblem,
    RowStatus,
)
from sampling.lab.scripts import Record, RecordRow
from sampling.store.scripts import Runner

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
    def __init__(self, redis: AnyRedis, *, waitaof: bool = False) -> None:
        self._redis = redis
        self._run = Runner(redis, waitaof=waitaof)

    async def shutdown(self) -> None:
        """Close the clients of its own (cluster nodes it sent WAITAOF to)."""
        await self._run.aclose()

    async def ingest(
        self,
        round_id: str,
        parsed: Parsed,
        *,
        device: str,
        holder: str | None = None,
        dry_run: bool = False,
    ) -> IngestReport:
        """Store the good rows of ``parsed``; report every row's fate.

        ``holder`` is the lab a lab device reports for: a result for a bound tube
        is then stored only when the tube is with that lab (in a box addressed to
        it whose intake is open, or scanned in at its intake); other rows are
        refused with the reason. None (an admin, the CLI): any lab's tubes.
        """
        rows: list[RowOutcome] = [
            RowOutcome(row=p.row, tube=p.value, status="refused", reason=p.reason)
            for p in parsed.problems
            if p.row > 0
        ]
        problems = list(parsed.problems)
        tally: dict[RowStatus, int] = {"stored": 0, "duplicate": 0, "held": 0, "orphan": 0}
        for start in range(0, len(parsed.good), CHUNK):
            chunk = parsed.good[start : start + CHUNK]
            results = [r for _, r in chunk]
            statuses = await self._record(round_id, results, device, holder, dry_run)
            for (n, res), (status, why) in zip(chunk, statuses, strict=True):
                if status == "refused":
                    problems.append(RowProblem(row=n, reason=why, value=res.tube))
                else:
                    tally[status] += 1
                rows.append(RowOutcome(row=n, tube=res.tube, status=status, reason=why))
        rows.sort(key=lambda o: o.row)
        problems.sort(key=lambda p: p.row)
        accepted = sum(tally.values())
        return IngestReport(
            round=round_id,
            dry_run=dry_run,
            rows_in=parsed.rows_in,
            accepted=accepted,
            refused=parsed.refused + len(problems) - len(parsed.problems),
            problems=problems,
            rows=rows,
            **tally,
        )

    async def _boxes(self, round_id: str, results: list[LabResult]) -> list[str]:
        """The box each tube is in now ('' none), read from the round's slot."""
        pipe = self._redis.pipeline(transaction=False)
        for res in results:
            pipe.hget(boxing_keys.tube_box(round_id, res.tube), res.tube)
        return [_text(b) if b else "" for b in await pipe.execute()]

    async def _record(
        self,
        round_id: str,
        results: list[LabResult],
        device: str,
        holder: str | None,
        dry_run: bool,
    ) -> list[tuple[RowStatus, str]]:
        boxes = await self._boxes(round_id, results) if holder is not None else []
        rows = [RecordRow(res, boxes[n] if boxes else "") for n, res in enumerate(results)]
        reply = await self._run(Record(round_id, device, rows, dry_run, holder))
        if reply.round_not_found:
            raise NotFound(f"no round {round_id}", round=round_id)
        out: list[tuple[RowStatus, str]] = []
        for row, (status, why) in zip(rows, reply.rows, strict=True):
            if status == "refused":
                out.append(("refused", _why(why, row.result.tube, row.box, holder or "")))
            else:
                out.append((status, ""))  # type: ignore[arg-type]
        return out

    # -- reads --------------------------------------------------------------------------

    async def result(self, round_id: str, tube: str) -> LabResult | None:
        raw = await self._redis.hget(keys.result(round_id), tube)
        return None if raw is None else LabResult.unpack(tube, _text(raw))

    async def held(self, round_id: str, lab: str | None = None) -> list[HeldResult]:
        """Results held for review; with ``lab``, only the ones that lab sent."""
        raw = await self._redis.hgetall(keys.review(round_id))
        out: list[HeldResult] = []
        for field, at in sorted(raw.items()):
            tube, _, packed = _text(field).partition("|")
            held = LabResult.unpack(tube, packed)
            if lab is not None and held.lab != lab:
                continue
            out.append(
                HeldResult(
                    tube=tube,
                    stored=await self.result(round_id, tube),
                    held=held,
                    received_at=int(at),
                )
            )
        return out

    async def orphans(self, round_id: str, lab: str | None = None) -> list[OrphanResult]:
        """Results for tubes no one bound; with ``lab``, only the ones that lab sent."""
        raw = await self._redis.hgetall(keys.orphans(round_id))
        found = [LabResult.unpack(_text(t), _text(p)) for t, p in sorted(raw.items())]
        return [OrphanResult(result=r) for r in found if lab is None or r.lab == lab]

    async def counters(self, round_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(keys.count(round_id))
        return {_text(k): int(v) for k, v in raw.items()}


def _why(word: str, tube: str, box: str, lab: str) -> str:
    """The reason a lab reads for a result refused because the tube is not with it."""
    lab = lab.strip("\0") or "(none)"
    match word:
        case "other_lab":
            return (
                f"tube {tube} went to another lab (box {box}), not {lab}: only the lab "
                "that holds a tube reports its result"
            )
        case "not_boxed":
            return f"tube {tube} was never boxed for lab {lab}: it is not at this lab"
        case "not_received":
            return (
                f"tube {tube} was not scanned in at lab {lab}'s intake of box {box}, "
                "which is closed: it did not arrive here"
            )
        case _:
            return f"tube {tube} moved to another box just now: send the row again"


def holder(device: Device) -> str | None:
    """The lab whose tubes a device may report (None: any lab's, for an admin)."""
    return device.lab if device.role == "lab" else None


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
