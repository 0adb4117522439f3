"""Boxing and chain of custody: boxes, sealing, handover, pick-up, lab intake, alarms.

Every operation goes one way: the codes are checked in Python (a garbled read
never reaches Redis), the role is checked, and ``custody.lua`` checks every rule
of the box, writes it, records the op for exactly-once retries and appends the
journal entry, in one atomic step in the round's slot. Reads (box, manifest,
discrepancies, timelines, overdue lists) are plain reads of what the script wrote.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sampling import codes
from sampling.binding.rounds import Sites
from sampling.binding.scripts import Claim
from sampling.binding.tube import TubeRecord
from sampling.boxing import keys
from sampling.boxing.config import BoxingConfig
from sampling.boxing.messages import message_for, needs, status_http
from sampling.boxing.models import (
    Box,
    BoxResult,
    BoxTubeView,
    Discrepancies,
    Event,
    Late,
    Manifest,
    Overdue,
    Timeline,
    TubeIssue,
)
from sampling.boxing.scripts import Custody, Unboxed, Unresulted
from sampling.codecheck import check_code
from sampling.errors import BadInput, Forbidden, NotFound, Refusal
from sampling.oplog import fingerprint
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from sampling.auth.models import Device
    from sampling.store.client import AnyRedis
    from sampling.store.lane import Lane

#: Which role performs each kind of operation.
ROLE = {
    "open": "sealer",
    "add": "sealer",
    "remove": "sealer",
    "seal": "sealer",
    "handover": "sealer",
    "pickup": "courier",
    "receive": "lab",
    "intake": "lab",
    "intake_close": "lab",
}
_SEAL_RETRIES = 5
_JOURNAL_PAGE = 2_000
_TUBE_PAGE = 500


class _BoxChanged(Exception):
    """Another sealer changed the box between reading its tubes and the seal step."""


def _s(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


def _t(raw: bytes | None) -> float | None:
    return None if raw is None else int(raw) / 1000


def _refs(rec: TubeRecord | None) -> list[str]:
    return [] if rec is None else [h.hex()[:8] for h, _ in rec.members]


class Boxer:
    def __init__(
        self,
        redis: AnyRedis,
        config: BoxingConfig | None = None,
        *,
        waitaof: bool = False,
        lane: Lane | None = None,
    ) -> None:
        # Replies are bytes (the client never decodes); redis-py's stubs say bytes | str,
        # so the client is held untyped here rather than cast at every read.
        self._redis: Any = redis
        self.config = config or BoxingConfig()
        # Box adds and intake scans come a tube at a time, as scans do: the same
        # multiplexed connection, when there is one.
        self._run = Runner(redis, waitaof=waitaof, lane=lane)

    async def shutdown(self) -> None:
        """Close the clients of its own (the lane is the binder's to close)."""
        await self._run.aclose()

    # -- the sealer ----------------------------------------------------------------

    async def open(
        self, device: Device, round_id: str, box: str, seq: int, op: str, lab: str = ""
    ) -> BoxResult:
        self._role(device, "open")
        code = check_code(box, codes.CodeKind.BOX, "box")
        if not await self._redis.exists(keys.meta(round_id)):
            raise NotFound(f"no round {round_id}", round=round_id)
        held = await self._run(Claim(keys.box_claim(code), code, round_id))
        args = (self.config.capacity, lab, int(bool(held)))
        return await self._custody(device, round_id, "open", code, "", seq, op, args, payload=lab)

    async def add(
        self, device: Device, round_id: str, box: str, tube: str, seq: int, op: str
    ) -> BoxResult:
        return await self._op(device, round_id, "add", box, tube, seq, op)

    async def remove(
        self, device: Device, round_id: str, box: str, tube: str, seq: int, op: str, reason: str
    ) -> BoxResult:
        return await self._op(device, round_id, "remove", box, tube, seq, op, (reason,))

    async def seal(
        self,
        device: Device,
        round_id: str,
        box: str,
        seq: int,
        op: str,
        tubes: int,
        samples: int,
        lab: str = "",
    ) -> BoxResult:
        self._role(device, "seal")
        code = check_code(box, codes.CodeKind.BOX, "box")
        args = (tubes, samples, lab)
        for _ in range(_SEAL_RETRIES):
            inside = sorted(
                t.decode() for t in await self._redis.hkeys(keys.box_tubes(round_id, code))
            )
            try:
                return await self._custody(
                    device,
                    round_id,
                    "seal",
                    code,
                    "",
                    seq,
                    op,
                    args,
                    payload=f"{tubes}|{samples}|{lab}",
                    inside=inside,
                )
            except _BoxChanged:
                continue
        raise Refusal(
            "box_busy",
            f"Box {code} kept changing while it was being sealed; seal it again.",
            409,
            box=code,
        )

    async def handover(
        self,
        device: Device,
        round_id: str,
        box: str,
        seq: int,
        op: str,
        courier: str,
        lab: str = "",
    ) -> BoxResult:
        return await self._op(device, round_id, "handover", box, "", seq, op, (courier, lab))

    # -- the courier and the lab -----------------------------------------------------

    async def pickup(
        self, device: Device, round_id: str, box: str, seq: int, op: str, place: str = ""
    ) -> BoxResult:
        return await self._op(device, round_id, "pickup", box, "", seq, op, (place,))

    async def receive(
        self, device: Device, round_id: str, box: str, seq: int, op: str
    ) -> BoxResult:
        return await self._op(device, round_id, "receive", box, "", seq, op)

    async def intake(
        self,
        device: Device,
        round_id: str,
        box: str,
        tube: str,
        seq: int,
        op: str,
        condition: str = "ok",
    ) -> BoxResult:
        return await self._op(device, round_id, "intake", box, tube, seq, op, (condition,))

    async def close_intake(
        self, device: Device, round_id: str, box: str, seq: int, op: str
    ) -> BoxResult:
        return await self._op(device, round_id, "intake_close", box, "", seq, op)

    # -- the shared path -------------------------------------------------------------

    def _role(self, device: Device, kind: str) -> None:
        if device.role != ROLE[kind]:
            raise Forbidden(
                f"a {device.role} device cannot {kind.replace('_', ' ')} boxes; "
                f"that is the {ROLE[kind]}'s step",
                role=device.role,
            )

    async def _op(
        self,
        device: Device,
        round_id: str,
        kind: str,
        box: str,
        tube: str,
        seq: int,
        op: str,
        args: tuple[str | int, ...] = (),
    ) -> BoxResult:
        self._role(device, kind)
        code = check_code(box, codes.CodeKind.BOX, "box")
        tcode = check_code(tube, codes.CodeKind.TUBE, "tube") if tube else ""
        result = await self._custody(
            device, round_id, kind, code, tcode, seq, op, args, payload="|".join(map(str, args))
        )
        return result

    async def _custody(
        self,
        device: Device,
        round_id: str,
        kind: str,
        box: str,
        tube: str,
        seq: int,
        op: str,
        args: tuple[str | int, ...],
        *,
        payload: str,
        inside: list[str] | None = None,
    ) -> BoxResult:
        reply = await self._run(
            Custody(
                round_id,
                device.id,
                device.site,
                device.lab,
                seq,
                fingerprint(op, f"{kind}|{box}|{tube}|{payload}".encode()),
                op,
                kind,
                box,
                tube,
                args,
                inside or [],
            )
        )
        head = reply.status
        if head == "revoked":
            raise Refusal("token_revoked", "this device's token was revoked", 401)
        if head == "box_changed":
            raise _BoxChanged
        state, tubes, samples = reply.state, reply.tubes, reply.samples
        if head != "ok":
            ctx: dict[str, Any] = {
                "box": box,
                "tube": tube,
                "state": state or "not opened",
                "tubes": tubes,
                "samples": samples,
            }
            await self._explain(round_id, head, device, args, ctx)
            raise Refusal(
                head,
                message_for(head, **ctx),
                status_http(head),
                box=box,
                tube=tube or None,
                seq=seq,
                state=state or None,
                tubes=tubes,
                samples=samples,
            )
        return BoxResult(
            seq=seq,
            op=op,
            kind=kind,
            box=box,
            tube=tube or None,
            status=head,
            state=state,
            tubes=tubes,
            samples=samples,
            replayed=reply.replayed,
        )

    async def _explain(
        self,
        round_id: str,
        status: str,
        device: Device,
        args: tuple[str | int, ...],
        ctx: dict[str, Any],
    ) -> None:
        """Look up what the refusal's message names: the counts, the other box, the lab."""
        want = needs(status)
        box, tube = ctx["box"], ctx["tube"]
        if "other" in want:
            other = await self._redis.hget(keys.tube_box(round_id, tube), tube)
            ctx["other"] = _s(other) or "another box"
        if "count" in want:
            raw = await self._redis.get(keys.tube(round_id, tube))
            ctx["count"] = len(TubeRecord(raw).members) if raw else 0
        if want & {"lab", "courier"}:
            lab, courier = await self._redis.hmget(keys.box(round_id, box), ["lab", "courier"])
            ctx["lab"] = _s(lab) or "(none)"
            ctx["courier"] = _s(courier) or "(none)"
        if "asked" in want:
            ctx["asked"] = (
                device.lab if status == "wrong_lab" else (args[1] if len(args) > 1 else "")
            )
        if status in ("tube_count_mismatch", "sample_count_mismatch"):
            ctx["counted_tubes"], ctx["counted_samples"] = args[0], args[1]
            ctx["samples_too"] = (
                f" (and {args[1]} samples counted against {ctx['samples']} bound)"
                if int(args[1]) != ctx["samples"]
                else ""
            )

    # -- reads -------------------------------------------------------------------------

    async def box(self, round_id: str, box: str) -> Box:
        code = check_code(box, codes.CodeKind.BOX, "box")
        raw = await self._redis.hgetall(keys.box(round_id, code))
        if not raw:
            raise NotFound(f"box {code} was not opened in round {round_id}", box=code)
        f = {k.decode(): v for k, v in raw.items()}
        inside = await self._redis.hgetall(keys.box_tubes(round_id, code))
        contents = []
        for t, v in sorted(inside.items()):
            n, ms = v.split(b":")
            contents.append(BoxTubeView(tube=t.decode(), residents=int(n), boxed_at=int(ms) / 1000))
        return Box(
            box=code,
            round=round_id,
            site=f["site"].decode(),
            lab=f["lab"].decode(),
            state=f["state"].decode(),
            capacity=int(f["cap"]),
            tubes=len(contents),
            samples=int(f["n"]),
            opened_at=int(f["opened_at"]) / 1000,
            opened_by=f["opened_by"].decode(),
            sealed_at=_t(f.get("sealed_at")),
            sealed_by=_s(f.get("sealed_by")),
            handed_at=_t(f.get("handed_at")),
            handed_by=_s(f.get("handed_by")),
            courier=_s(f.get("courier")),
            picked_up_at=_t(f.get("picked_at")),
            pickup_place=_s(f.get("pickup_place")),
            received_at=_t(f.get("received_at")),
            received_by=_s(f.get("received_by")),
            intake_closed_at=_t(f.get("intake_closed_at")),
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
        records = await self._records(round_id, [c.tube for c in found.contents])
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
        for t, v in raw.items():
            cond, _, where, n = v.decode().split(":")
            scanned[t.decode()] = (cond, where, int(n))
        listed = {c.tube: c.residents for c in found.contents}
        issues = [t for t in listed if t not in scanned] + [
            t for t, (c, w, _) in scanned.items() if c != "ok" or w != "manifest"
        ]
        records = await self._records(round_id, issues)
        others = await self._boxes_of(
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

    async def _records(self, round_id: str, tubes: list[str]) -> dict[str, TubeRecord]:
        if not tubes:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for t in tubes:
            pipe.get(keys.tube(round_id, t))
        return {
            t: TubeRecord(raw) for t, raw in zip(tubes, await pipe.execute(), strict=True) if raw
        }

    async def _boxes_of(self, round_id: str, tubes: list[str]) -> dict[str, str]:
        if not tubes:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        for t in tubes:
            pipe.hget(keys.tube_box(round_id, t), t)
        return {t: b.decode() for t, b in zip(tubes, await pipe.execute(), strict=True) if b}

    # -- timelines ---------------------------------------------------------------------

    async def timeline(self, round_id: str, code: str) -> Timeline:
        text = codes.normalize(code)
        if codes.classify(text) is codes.CodeKind.TUBE:
            return await self._tube_timeline(
                round_id, check_code(text, codes.CodeKind.TUBE, "tube")
            )
        box = await self.box(round_id, text)
        return Timeline(code=box.box, kind="box", round=round_id, events=_box_events(box))

    async def _tube_timeline(self, round_id: str, tube: str) -> Timeline:
        raw = await self._redis.get(keys.tube(round_id, tube))
        if raw is None:
            raise NotFound(f"tube {tube} was not opened in round {round_id}", tube=tube)
        rec = TubeRecord(raw)
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
        in_box = _s(await self._redis.hget(keys.tube_box(round_id, tube), tube))
        if in_box is not None:
            box = await self.box(round_id, in_box)
            mine = next(c for c in box.contents if c.tube == tube)
            events.append(Event(at=mine.boxed_at, event="boxed", place=box.site, detail=box.box))
            events += [e for e in _box_events(box) if e.event not in ("opened", "intake_closed")]
            entry = await self._redis.hget(keys.intake(round_id, in_box), tube)
            if entry is not None:
                cond, ms, _, _ = entry.decode().split(":")
                events.append(Event(at=int(ms) / 1000, event="intake", place=box.lab, detail=cond))
            elif box.intake_closed_at is not None:
                events.append(Event(at=box.intake_closed_at, event="missing", place=box.lab))
        events.sort(key=lambda e: e.at)
        return Timeline(code=tube, kind="tube", round=round_id, events=events)

    # -- overdue -----------------------------------------------------------------------

    async def refresh_unboxed(self, round_id: str) -> int:
        """Fold opens, closes and undos journalled since the last call into the unboxed
        and open-tube indexes."""
        cursor = _s(await self._redis.get(keys.due_cursor(round_id))) or "0-0"
        total = 0
        while True:
            page = await self._redis.xrange(
                keys.journal(round_id), f"({cursor}", "+", count=_JOURNAL_PAGE
            )
            if not page:
                return total
            tubes = list(
                dict.fromkeys(
                    f[b"tube"].decode()
                    for _, f in page
                    if f.get(b"k") in (b"open", b"close", b"undo")
                )
            )
            cursor = page[-1][0].decode()
            for i in range(0, max(len(tubes), 1), _TUBE_PAGE):
                chunk = tubes[i : i + _TUBE_PAGE]
                total = await self._run(Unboxed(round_id, cursor, chunk))
            if len(page) < _JOURNAL_PAGE:
                return total

    async def overdue(
        self,
        round_id: str,
        limits: dict[str, int] | None = None,
        *,
        now: float | None = None,
        limit: int = 200,
    ) -> Overdue:
        if not await self._redis.exists(keys.meta(round_id)):
            raise NotFound(f"no round {round_id}", round=round_id)
        cfg = self.config
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
                rows = await self._run(Unresulted(round_id, cutoff, limit))
            else:
                rows = [
                    (c.decode(), score)
                    for c, score in await self._redis.zrangebyscore(
                        keys.due(round_id, which),
                        "-inf",
                        cutoff,
                        start=0,
                        num=limit,
                        withscores=True,
                    )
                ]
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
                    site=places.get(c, (None, None))[0],
                    lab=places.get(c, (None, None))[1],
                )
                for c, (_, score) in zip(codes_, rows, strict=True)
            ]
        return Overdue(now=at, limits=lim, **found)

    async def _tube_sites(
        self, round_id: str, tubes: list[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        return {t: (r.site, None) for t, r in (await self._records(round_id, tubes)).items()}

    async def _tube_places(
        self, round_id: str, tubes: list[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        """Each tube's site and the lab of the box it came in."""
        sites = await self._tube_sites(round_id, tubes)
        pipe = self._redis.pipeline(transaction=False)
        for t in tubes:
            pipe.hget(keys.tube_box(round_id, t), t)
        boxes = {t: _s(b) for t, b in zip(tubes, await pipe.execute(), strict=True)}
        labs = await self._box_places(round_id, sorted({b for b in boxes.values() if b}))
        return {
            t: (sites.get(t, (None, None))[0], labs.get(boxes[t] or "", (None, None))[1])
            for t in tubes
        }

    async def _box_places(
        self, round_id: str, boxes: list[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        pipe = self._redis.pipeline(transaction=False)
        for b in boxes:
            pipe.hmget(keys.box(round_id, b), ["site", "lab"])
        return {
            b: (_s(s), _s(lab)) for b, (s, lab) in zip(boxes, await pipe.execute(), strict=True)
        }

    async def courier_boxes(self, round_id: str, courier: str) -> list[Box]:
        """The boxes handed to ``courier`` and not yet through intake, oldest first: those
        waiting for pick-up, on the road, and delivered to the lab's desk."""
        found: dict[str, float] = {}
        for which in ("sealed", "transit", "intake"):
            for code, score in await self._redis.zrange(
                keys.due(round_id, which), 0, -1, withscores=True
            ):
                found[code.decode()] = score
        if not found:
            return []
        boxes = sorted(found, key=lambda c: (found[c], c))
        pipe = self._redis.pipeline(transaction=False)
        for code in boxes:
            pipe.hget(keys.box(round_id, code), "courier")
        mine = [c for c, who in zip(boxes, await pipe.execute(), strict=True) if _s(who) == courier]
        return [await self.box(round_id, c) for c in mine]

    # -- who may read what -------------------------------------------------------------

    @staticmethod
    def may_read(device: Device, box: Box) -> None:
        """Sealers read their site's boxes, couriers the boxes handed to them (or not
        yet handed to anyone: the manifest is the pick-up paperwork), labs the boxes
        addressed to them."""
        if device.role == "courier" and box.courier not in (None, "", device.id):
            raise Forbidden("this box was not handed to this courier", box=box.box)
        if device.role == "sealer" and box.site != device.site:
            raise Forbidden("this box belongs to another site", box=box.box)
        if device.role == "lab" and box.lab != device.lab:
            raise Forbidden("this box is addressed to another lab", box=box.box)


def _box_events(box: Box) -> list[Event]:
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
