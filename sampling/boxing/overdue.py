"""The overdue index: what is late along the chain of custody, and a courier's boxes.

``custody.lua`` keeps a sorted set per custody stage (``keys.DUE``), scored by when
the box or tube entered it. Tubes closed at a sampling point reach the unboxed and
open-tube indexes by a fold of the round's journal (``unboxed.lua``), so the hot
scan path writes nothing for boxing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sampling.boxing import keys
from sampling.boxing.models import Box, Late, Overdue
from sampling.boxing.replies import scored, stream_entries, text_or_none
from sampling.boxing.scripts import Unboxed, Unresulted
from sampling.errors import BadInput, NotFound

if TYPE_CHECKING:
    from sampling.boxing.config import BoxingConfig
    from sampling.boxing.reads import BoxReads
    from sampling.store.client import AnyRedis
    from sampling.store.scripts import Runner

#: Journal entries read per page while folding, and tubes per ``unboxed.lua`` call.
_JOURNAL_PAGE = 2_000
_TUBE_PAGE = 500
#: A code's site and lab, either unknown.
Place = tuple[str | None, str | None]
_NOWHERE: Place = (None, None)


async def refresh_unboxed(redis: AnyRedis, run: Runner, round_id: str) -> int:
    """Fold opens, closes and undos journalled since the last call into the unboxed
    and open-tube indexes; answers the tubes now in the unboxed index."""
    cursor = text_or_none(await redis.get(keys.due_cursor(round_id))) or "0-0"
    total = 0
    while True:
        page = stream_entries(
            await redis.xrange(keys.journal(round_id), f"({cursor}", "+", count=_JOURNAL_PAGE)
        )
        if not page:
            return total
        tubes = list(
            dict.fromkeys(
                f[b"tube"].decode() for _, f in page if f.get(b"k") in (b"open", b"close", b"undo")
            )
        )
        cursor = page[-1][0]
        for i in range(0, max(len(tubes), 1), _TUBE_PAGE):
            chunk = tubes[i : i + _TUBE_PAGE]
            total = await run(Unboxed(round_id=round_id, cursor=cursor, tubes=chunk))
        if len(page) < _JOURNAL_PAGE:
            return total


class OverdueIndex:
    def __init__(self, redis: AnyRedis, run: Runner, reads: BoxReads, config: BoxingConfig) -> None:
        self._redis = redis
        self._run = run
        self._reads = reads
        self._config = config

    async def refresh_unboxed(self, round_id: str) -> int:
        return await refresh_unboxed(self._redis, self._run, round_id)

    async def overdue(
        self,
        round_id: str,
        limits: dict[str, int] | None = None,
        *,
        now: float | None = None,
        limit: int = 200,
    ) -> Overdue:
        """What has been in each stage longer than its limit (seconds; ``limits``
        overrides the settings' per stage), oldest first, at most ``limit`` a stage."""
        if not await self._redis.exists(keys.meta(round_id)):
            raise NotFound(f"no round {round_id}", round=round_id)
        cfg = self._config
        lim = {
            "unboxed": cfg.unboxed_after,
            "sealed": cfg.pickup_after,
            "transit": cfg.transit_after,
            "intake": cfg.intake_after,
            "open": cfg.open_after,
            "result": cfg.result_after,
        } | (limits or {})
        if any(v < 0 for v in lim.values()):
            raise BadInput("overdue limits are seconds, zero or more", limits=lim)
        await self.refresh_unboxed(round_id)
        at = time.time() if now is None else now
        found: dict[str, list[Late]] = {}
        for which in (*keys.DUE, "open", "result"):
            cutoff = int((at - lim[which]) * 1000)
            if which == "result":
                rows = await self._run(Unresulted(round_id=round_id, cutoff_ms=cutoff, limit=limit))
            else:
                rows = await self._since(keys.due(round_id, which), cutoff, limit)
            codes_ = [c for c, _ in rows]
            if which in ("unboxed", "open"):
                places = await self._tube_sites(round_id, codes_)
            elif which == "result":
                places = await self._tube_places(round_id, codes_)
            else:
                places = await self._box_places(round_id, codes_)
            found[which] = [
                Late(
                    code=c,
                    since=score / 1000,
                    minutes=round((at - score / 1000) / 60, 1),
                    site=places.get(c, _NOWHERE)[0],
                    lab=places.get(c, _NOWHERE)[1],
                )
                for c, (_, score) in zip(codes_, rows, strict=True)
            ]
        return Overdue(now=at, limits=lim, **found)

    async def _since(self, key: str, cutoff_ms: int, limit: int) -> list[tuple[str, float]]:
        """Members of one stage's index scored at or before ``cutoff_ms``, oldest first."""
        return scored(
            await self._redis.zrangebyscore(
                key, "-inf", cutoff_ms, start=0, num=limit, withscores=True
            )
        )

    async def _tube_sites(self, round_id: str, tubes: list[str]) -> dict[str, Place]:
        return {t: (r.site, None) for t, r in (await self._reads.records(round_id, tubes)).items()}

    async def _tube_places(self, round_id: str, tubes: list[str]) -> dict[str, Place]:
        """Each tube's site and the lab of the box it came in."""
        sites = await self._tube_sites(round_id, tubes)
        boxes = await self._reads.boxes_of(round_id, tubes)
        labs = await self._box_places(round_id, sorted(set(boxes.values())))
        return {
            t: (sites.get(t, _NOWHERE)[0], labs.get(boxes.get(t, ""), _NOWHERE)[1]) for t in tubes
        }

    async def _box_places(self, round_id: str, boxes: list[str]) -> dict[str, Place]:
        pipe = self._redis.pipeline(transaction=False)
        for b in boxes:
            pipe.hmget(keys.box(round_id, b), ["site", "lab"])
        return {
            b: (text_or_none(s), text_or_none(lab))
            for b, (s, lab) in zip(boxes, await pipe.execute(), strict=True)
        }

    async def courier_boxes(self, round_id: str, courier: str) -> list[Box]:
        """The boxes handed to ``courier`` and not yet through intake, oldest first: those
        waiting for pick-up, on the road, and delivered to the lab's desk."""
        found: dict[str, float] = {}
        for which in ("sealed", "transit", "intake"):
            found.update(
                scored(await self._redis.zrange(keys.due(round_id, which), 0, -1, withscores=True))
            )
        if not found:
            return []
        boxes = sorted(found, key=lambda c: (found[c], c))
        pipe = self._redis.pipeline(transaction=False)
        for code in boxes:
            pipe.hget(keys.box(round_id, code), "courier")
        mine = [
            c
            for c, who in zip(boxes, await pipe.execute(), strict=True)
            if text_or_none(who) == courier
        ]
        return [await self._reads.box(round_id, c) for c in mine]
