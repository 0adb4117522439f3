"""The live figures of one round, from counters and small indexes the atomic steps
keep and the latest archived tables: a fixed number of Redis reads (one pipeline,
then one HMGET for device sites) and two cached files, whatever the round's size.

Where each figure comes from:

* residents: ``expected`` from the archived coverage table (register), ``sampled``
  from the binding counter ``bound``;
* scans per minute: ``{rd:R}:spm`` (apply.lua);
* tubes, boxes: differences of cumulative counters (apply.lua ``tubes_opened``,
  ``tubes_closed``; custody.lua ``tubes_boxed`` .. ``tubes_received``; record.lua
  ``stored``): each tube is counted once, at the furthest stage it reached;
* results, positives and orders: record.lua's ``outcome:*``, ``resample_*``
  counters and ``{rd:R}:positive``, apply.lua's ``resampled``;
* overdue and alarms: the boxing ``due:*`` sorted sets (ZCOUNT and the oldest few),
  ``due:result``, ``boxalarm``; devices: ``dev:seen``, ``dev:gap``, ``dev:site``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sampling.binding import keys as bkeys
from sampling.boxing import keys as xkeys
from sampling.errors import NotFound
from sampling.lab import keys as lkeys
from sampling.live.models import (
    Alarm,
    Devices,
    GapDevice,
    Live,
    Minute,
    Orders,
    OverdueStage,
    Positives,
    Residents,
    SilentDevice,
    Tubes,
)
from sampling.live.tables import CoverageCache

if TYPE_CHECKING:
    from sampling.boxing.config import BoxingConfig
    from sampling.boxing.service import Boxer
    from sampling.settings import Settings
    from sampling.store.client import AnyRedis

#: Devices seen within this many seconds are active.
ACTIVE_S = 300
#: Alarms listed per kind (the counts in ``overdue`` are complete).
ALARMS_PER_KIND = 50
#: Seconds between folds of closed tubes into the unboxed index per process.
_FOLD_EVERY = 5.0
_STAGES = ("unboxed", "sealed", "transit", "intake", "result")


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _counts(raw: dict[Any, Any]) -> dict[str, int]:
    return {_text(k): int(v) for k, v in raw.items()}


class LiveFigures:
    """Answers :class:`Live` for a round; one per API process."""

    def __init__(self, redis: AnyRedis, settings: Settings, boxer: Boxer) -> None:
        self._redis = redis
        self._settings = settings
        self._boxer = boxer
        self._cache = CoverageCache(settings.data_dir)
        self._folded: dict[str, float] = {}

    def _limits(self) -> dict[str, int]:
        cfg: BoxingConfig = self._boxer.config
        return {
            "unboxed": cfg.unboxed_after,
            "sealed": cfg.pickup_after,
            "transit": cfg.transit_after,
            "intake": cfg.intake_after,
            "result": self._settings.result_after,
        }

    def _due_key(self, round_id: str, stage: str) -> str:
        if stage == "result":
            return xkeys.awaiting_result(round_id)
        return xkeys.due(round_id, stage)

    async def _fold_unboxed(self, round_id: str, now: float) -> None:
        # Closes reach the unboxed index by a fold of the journal since the last
        # one (boxing's design); throttled so a busy page costs one fold per 5 s.
        if now - self._folded.get(round_id, 0.0) >= _FOLD_EVERY:
            self._folded[round_id] = now
            await self._boxer.refresh_unboxed(round_id)

    async def figures(self, round_id: str, *, now: float | None = None) -> Live:
        state = await self._redis.hget(bkeys.meta(round_id), "state")
        if state is None:
            raise NotFound(f"no round {round_id}: check the round id", round=round_id)
        round_open = _text(state) == "open"
        at = time.time() if now is None else now
        await self._fold_unboxed(round_id, at)
        now_ms = int(at * 1000)
        this_minute = int(at) // 60 * 60
        minutes = [this_minute - 60 * i for i in range(59, -1, -1)]
        limits = self._limits()

        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(bkeys.count(round_id))
        pipe.hgetall(xkeys.count(round_id))
        pipe.hgetall(lkeys.count(round_id))
        pipe.hmget(bkeys.scans_per_minute(round_id), [str(m) for m in minutes])
        pipe.zcount(bkeys.devices_seen(round_id), now_ms - ACTIVE_S * 1000, "+inf")
        pipe.zrangebyscore(
            bkeys.devices_seen(round_id),
            "-inf",
            now_ms - self._settings.silent_after * 1000,
            start=0,
            num=ALARMS_PER_KIND,
            withscores=True,
        )
        pipe.hgetall(bkeys.devices_gap(round_id))
        pipe.hgetall(xkeys.alarms(round_id))
        pipe.hgetall(lkeys.positives(round_id))
        for stage in _STAGES:
            cutoff = now_ms - limits[stage] * 1000
            pipe.zcount(self._due_key(round_id, stage), "-inf", cutoff)
            pipe.zrangebyscore(
                self._due_key(round_id, stage),
                "-inf",
                cutoff,
                start=0,
                num=ALARMS_PER_KIND,
                withscores=True,
            )
        (
            bcount, xcount, lcount, spm, active, silent_raw, gaps_raw, box_alarms, positives,
            *due,
        ) = await pipe.execute()  # fmt: skip
        b, x, lab = _counts(bcount), _counts(xcount), _counts(lcount)

        gap_devices = {_text(k): int(v) for k, v in gaps_raw.items() if int(v) > 0}
        silent_rows = [(_text(d), s / 1000) for d, s in silent_raw] if round_open else []
        named = sorted(set(gap_devices) | {d for d, _ in silent_rows})
        sites: dict[str, str] = {}
        if named:
            raw_sites = await self._redis.hmget(bkeys.devices_site(round_id), named)
            sites = {
                d: _text(s) if s is not None else "" for d, s in zip(named, raw_sites, strict=True)
            }

        overdue: list[OverdueStage] = []
        alarms: list[Alarm] = []
        for i, stage in enumerate(_STAGES):
            count, rows = int(due[2 * i]), due[2 * i + 1]
            oldest = round(at - rows[0][1] / 1000, 1) if rows else 0.0
            overdue.append(OverdueStage(stage=stage, count=count, oldest_s=oldest))
            for code, score in rows:
                age = round(at - score / 1000, 1)
                if stage in ("unboxed", "result"):
                    kind = "overdue_tube" if stage == "unboxed" else "no_result"
                    alarms.append(Alarm(
                        kind=kind, subject_kind="tube", subject=_text(code), age_s=age,
                        detail=stage,
                    ))  # fmt: skip
                else:
                    alarms.append(Alarm(
                        kind="overdue_box", subject_kind="box", subject=_text(code), age_s=age,
                        detail=stage,
                    ))  # fmt: skip

        orders_ordered = lab.get("resample_ordered", 0)
        resampled = b.get("resampled", 0)
        resulted_orders = lab.get("resample_resulted", 0)
        for tube, entry in positives.items():
            residents, _, ms = _text(entry).partition(":")
            alarms.append(Alarm(
                kind="positive_pool", subject_kind="tube", subject=_text(tube),
                age_s=round(at - int(ms) / 1000, 1),
                detail=f"{residents} residents to re-sample alone",
            ))  # fmt: skip
        for device, seen in silent_rows:
            alarms.append(Alarm(
                kind="silent_device", subject_kind="device", subject=device,
                age_s=round(at - seen, 1), detail=sites.get(device, ""),
            ))  # fmt: skip
        for device, missing in sorted(gap_devices.items()):
            alarms.append(Alarm(
                kind="device_gap", subject_kind="device", subject=device, age_s=0.0,
                detail=f"{missing} sequence numbers missing",
            ))  # fmt: skip
        for field, entry in box_alarms.items():
            what, _, box = _text(field).partition("|")
            *parts, ms = _text(entry).split(":")
            age = round(at - int(ms) / 1000, 1)
            if what == "seal":
                alarms.append(Alarm(
                    kind="seal_refused", subject_kind="box", subject=box, age_s=age,
                    detail=parts[0],
                ))  # fmt: skip
            else:
                lost, extra, damaged = parts
                alarms.append(Alarm(
                    kind="intake_discrepancy", subject_kind="box", subject=box, age_s=age,
                    detail=f"missing {lost}, extra {extra}, damaged {damaged}",
                ))  # fmt: skip

        rows = self._cache.rows(round_id)
        expected = sum(r.expected for r in rows if r.level == "street")
        sampled = b.get("bound", 0)
        return Live(
            round=round_id,
            as_of=at,
            archived_at=self._cache.archived_at(round_id),
            residents=Residents(
                expected=expected,
                sampled=sampled,
                coverage=min(100.0, round(100.0 * sampled / expected, 2)) if expected else 0.0,
            ),
            scans_per_minute=[
                Minute(minute=m, scans=int(v) if v is not None else 0)
                for m, v in zip(minutes, spm, strict=True)
            ],
            tubes=_tubes(b, x, lab),
            boxes=_boxes(x),
            results={o: lab.get(f"outcome:{o}", 0) for o in ("negative", "positive", "invalid")},
            positives=Positives(
                pools=len(positives),
                orders=Orders(
                    open=max(0, orders_ordered - resampled),
                    sampled=max(0, resampled - resulted_orders),
                    resulted=resulted_orders,
                ),
            ),
            overdue=overdue,
            devices=Devices(
                active=int(active),
                silent=[
                    SilentDevice(device=d, site=sites.get(d, ""), last_seen=s)
                    for d, s in silent_rows
                ],
                gaps=[
                    GapDevice(device=d, site=sites.get(d, ""), missing=m)
                    for d, m in sorted(gap_devices.items())
                ],
            ),
            coverage=rows,
            alarms=sorted(alarms, key=lambda a: -a.age_s),
        )


def _tubes(b: dict[str, int], x: dict[str, int], lab: dict[str, int]) -> Tubes:
    # Cumulative counts, each a subset of the one before; their differences are
    # the tubes standing at each stage now.
    opened, closed = b.get("tubes_opened", 0), b.get("tubes_closed", 0)
    boxed, sealed = x.get("tubes_boxed", 0), x.get("tubes_sealed", 0)
    picked, received = x.get("tubes_picked_up", 0), x.get("tubes_received", 0)
    resulted = lab.get("stored", 0)
    return Tubes(
        open=max(0, opened - closed),
        closed_unboxed=max(0, closed - boxed),
        boxed=max(0, boxed - sealed),
        sealed=max(0, sealed - picked),
        in_transit=max(0, picked - received),
        received=max(0, received - resulted),
        resulted=resulted,
    )


def _boxes(x: dict[str, int]) -> dict[str, int]:
    opened, sealed = x.get("boxes_opened", 0), x.get("boxes_sealed", 0)
    picked, received = x.get("boxes_picked_up", 0), x.get("boxes_received", 0)
    closed = x.get("intakes_closed", 0)
    return {
        "open": max(0, opened - sealed),
        "sealed": max(0, sealed - picked),
        "picked_up": max(0, picked - received),
        "received": max(0, received - closed),
        "intake_closed": closed,
    }
