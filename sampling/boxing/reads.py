"""Reading boxes: a box as it is, a sealed box's manifest, a received box's discrepancies.

Plain reads of what ``custody.lua`` wrote; nothing here changes anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampling import codes
from sampling.binding.rounds import Sites
from sampling.binding.tube import TubeRecord
from sampling.boxing import keys
from sampling.boxing.models import Box, BoxTubeView, Discrepancies, Manifest, TubeIssue
from sampling.boxing.replies import fields, seconds, text, text_or_none
from sampling.codecheck import check_code
from sampling.errors import NotFound, Refusal

if TYPE_CHECKING:
    from sampling.store.client import AnyRedis


def _refs(rec: TubeRecord | None) -> list[str]:
    return [] if rec is None else [h.hex()[:8] for h, _ in rec.members]


class BoxReads:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis

    async def box(self, round_id: str, box: str) -> Box:
        code = check_code(box, codes.CodeKind.BOX, "box")
        raw = await self._redis.hgetall(keys.box(round_id, code))
        if not raw:
            raise NotFound(f"box {code} was not opened in round {round_id}", box=code)
        f = fields(raw)
        inside = await self._redis.hgetall(keys.box_tubes(round_id, code))
        contents = []
        for t, v in sorted(fields(inside).items()):
            n, ms = text(v).split(":")
            contents.append(BoxTubeView(tube=t, residents=int(n), boxed_at=int(ms) / 1000))
        return Box(
            box=code,
            round=round_id,
            site=text(f["site"]),
            lab=text(f["lab"]),
            state=text(f["state"]),  # type: ignore[arg-type]
            capacity=int(f["cap"]),
            tubes=len(contents),
            samples=int(f["n"]),
            opened_at=int(f["opened_at"]) / 1000,
            opened_by=text(f["opened_by"]),
            sealed_at=seconds(f.get("sealed_at")),
            sealed_by=text_or_none(f.get("sealed_by")),
            handed_at=seconds(f.get("handed_at")),
            handed_by=text_or_none(f.get("handed_by")),
            courier=text_or_none(f.get("courier")),
            picked_up_at=seconds(f.get("picked_at")),
            pickup_place=text_or_none(f.get("pickup_place")),
            received_at=seconds(f.get("received_at")),
            received_by=text_or_none(f.get("received_by")),
            intake_closed_at=seconds(f.get("intake_closed_at")),
            contents=contents,
        )

    async def manifest(self, round_id: str, box: str) -> Manifest:
        found = await self.box(round_id, box)
        if found.state == "open" or found.sealed_at is None or found.sealed_by is None:
            raise Refusal(
                "box_not_sealed",
                f"Box {found.box} is not sealed yet; a manifest exists only for a sealed box.",
                409,
                box=found.box,
            )
        records = await self.records(round_id, [c.tube for c in found.contents])
        try:
            site_name = (await Sites(self._redis).get(found.site)).name
        except NotFound:
            site_name = ""
        return Manifest(
            site_name=site_name,
            singles=sorted(t for t, rec in records.items() if rec.capacity == 1),
            box=found.box,
            round=round_id,
            site=found.site,
            lab=found.lab,
            sealed_at=found.sealed_at,
            sealed_by=found.sealed_by,
            tube_count=found.tubes,
            sample_count=found.samples,
            tubes=found.contents,
        )

    async def discrepancies(self, round_id: str, box: str) -> Discrepancies:
        found = await self.box(round_id, box)
        if found.state not in ("received", "intake_closed"):
            raise Refusal(
                "box_not_received",
                f"Box {found.box} has not reached the lab's desk yet ({found.state}).",
                409,
                box=found.box,
            )
        raw = await self._redis.hgetall(keys.intake(round_id, found.box))
        scanned: dict[str, tuple[str, str, int]] = {}
        for t, v in fields(raw).items():
            cond, _, where, n = text(v).split(":")
            scanned[t] = (cond, where, int(n))
        listed = {c.tube: c.residents for c in found.contents}
        issues = [t for t in listed if t not in scanned] + [
            t for t, (c, w, _) in scanned.items() if c != "ok" or w != "manifest"
        ]
        records = await self.records(round_id, issues)
        others = await self.boxes_of(
            round_id, [t for t, (_, w, _) in scanned.items() if w == "other_box"]
        )

        def issue(t: str, where: str, n: int, cond: str | None) -> TubeIssue:
            return TubeIssue(
                tube=t,
                residents=n,
                refs=_refs(records.get(t)),
                where=where,  # type: ignore[arg-type]
                condition=cond,  # type: ignore[arg-type]
                other_box=others.get(t),
            )

        missing = [
            issue(t, "manifest", n, None) for t, n in sorted(listed.items()) if t not in scanned
        ]
        extra = [issue(t, w, n, c) for t, (c, w, n) in sorted(scanned.items()) if w != "manifest"]
        damaged = [issue(t, w, n, c) for t, (c, w, n) in sorted(scanned.items()) if c != "ok"]
        affected = {i.tube: i.residents for i in (*missing, *extra, *damaged)}
        return Discrepancies(
            box=found.box,
            round=round_id,
            lab=found.lab,
            closed=found.state == "intake_closed",
            received=sum(1 for c, w, _ in scanned.values() if c == "ok" and w == "manifest"),
            missing=missing,
            extra=extra,
            damaged=damaged,
            residents_affected=sum(affected.values()),
        )

    async def records(self, round_id: str, tubes: list[str]) -> dict[str, TubeRecord]:
        """The tube records of ``tubes`` that exist."""
        if not tubes:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for t in tubes:
            pipe.get(keys.tube(round_id, t))
        return {
            t: TubeRecord(raw) for t, raw in zip(tubes, await pipe.execute(), strict=True) if raw
        }

    async def boxes_of(self, round_id: str, tubes: list[str]) -> dict[str, str]:
        """The box each of ``tubes`` is in, for those in one."""
        if not tubes:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for t in tubes:
            pipe.hget(keys.tube_box(round_id, t), t)
        return {t: text(b) for t, b in zip(tubes, await pipe.execute(), strict=True) if b}
