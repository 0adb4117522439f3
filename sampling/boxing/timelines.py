"""Custody timelines: every step a box or a tube went through, in time order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampling import codes
from sampling.binding.tube import TubeRecord
from sampling.boxing import keys
from sampling.boxing.models import Box, Event, Timeline
from sampling.boxing.replies import text, text_or_none
from sampling.codecheck import check_code
from sampling.errors import NotFound
from sampling.store.client import as_bytes

if TYPE_CHECKING:
    from sampling.boxing.reads import BoxReads
    from sampling.store.client import AnyRedis


class Timelines:
    def __init__(self, redis: AnyRedis, reads: BoxReads) -> None:
        self._redis = redis
        self._reads = reads

    async def timeline(self, round_id: str, code: str) -> Timeline:
        """The timeline of a tube code or a box code."""
        given = codes.normalize(code)
        if codes.classify(given) is codes.CodeKind.TUBE:
            return await self._tube(round_id, check_code(given, codes.CodeKind.TUBE, "tube"))
        box = await self._reads.box(round_id, given)
        return Timeline(code=box.box, kind="box", round=round_id, events=box_events(box))

    async def _tube(self, round_id: str, tube: str) -> Timeline:
        raw = await self._redis.get(keys.tube(round_id, tube))
        if raw is None:
            raise NotFound(f"tube {tube} was not opened in round {round_id}", tube=tube)
        rec = TubeRecord(as_bytes(raw))
        events = [Event(at=float(rec.opened_at), event="opened", by=rec.device, place=rec.site)]
        if rec.closed_at:
            events.append(
                Event(
                    at=float(rec.closed_at),
                    event="closed",
                    place=rec.site,
                    detail=f"{len(rec.members)} samples",
                )
            )
        in_box = text_or_none(await self._redis.hget(keys.tube_box(round_id, tube), tube))
        if in_box is not None:
            box = await self._reads.box(round_id, in_box)
            mine = next(c for c in box.contents if c.tube == tube)
            events.append(Event(at=mine.boxed_at, event="boxed", place=box.site, detail=box.box))
            events += [e for e in box_events(box) if e.event not in ("opened", "intake_closed")]
            entry = await self._redis.hget(keys.intake(round_id, in_box), tube)
            if entry is not None:
                cond, ms, _, _ = text(entry).split(":")
                events.append(Event(at=int(ms) / 1000, event="intake", place=box.lab, detail=cond))
            elif box.intake_closed_at is not None:
                events.append(Event(at=box.intake_closed_at, event="missing", place=box.lab))
        events.sort(key=lambda e: e.at)
        return Timeline(code=tube, kind="tube", round=round_id, events=events)


def box_events(box: Box) -> list[Event]:
    """The custody steps a box has been through."""
    steps = [
        (box.opened_at, "opened", box.opened_by, box.site, None),
        (
            box.sealed_at,
            "sealed",
            box.sealed_by,
            box.site,
            f"{box.tubes} tubes, {box.samples} samples",
        ),
        (box.handed_at, "handed_over", box.handed_by, box.site, f"to {box.courier}"),
        (box.picked_up_at, "picked_up", box.courier, box.pickup_place, None),
        (box.received_at, "received", box.received_by, box.lab, None),
        (box.intake_closed_at, "intake_closed", None, box.lab, None),
    ]
    return [
        Event(at=at, event=ev, by=by, place=pl or None, detail=d)
        for at, ev, by, pl, d in steps
        if at is not None
    ]
