"""The lab's intake desk, ``/ui/intake``: receive the arriving box (a box for another
lab is refused with where to send it), scan each tube (ok, damaged, leaking), watch
the lists of expected, scanned, missing, extra (with where each belongs) and
damaged tubes, close the intake, and read the discrepancy summary with the
residents affected. Everything is the boxing API's, as the signed-in lab device;
the summary is ``GET .../boxes/{box}/discrepancies`` itself."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage

from sampling.api.auth import TOKEN_COOKIE, services
from sampling.boxing import keys
from sampling.errors import AuthError
from sampling.web import i18n
from sampling.web.layer import Link, link, roles
from sampling.web.pages.chain import page

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

i18n.register(
    {
        "nav.intake": {"zh": "样本接收", "en": "Intake"},
        "intake.title": {"zh": "实验室接收台", "en": "Lab intake desk"},
        "intake.box": {"zh": "扫描到达的箱码", "en": "Scan the arriving box"},
        "intake.receive": {"zh": "接收", "en": "Receive"},
        "intake.received": {
            "zh": "已接收箱 {box}，请逐管扫描",
            "en": "Box {box} received: scan each tube",
        },
        "intake.tube": {"zh": "扫描试管", "en": "Scan a tube"},
        "intake.condition": {"zh": "状况", "en": "Condition"},
        "intake.scan": {"zh": "登记", "en": "Record"},
        "intake.close": {
            "zh": "完成接收（未扫到的记为缺失）",
            "en": "Close intake (unscanned: missing)",
        },
        "intake.closed": {"zh": "接收完成：{box}", "en": "Intake closed: {box}"},
        "intake.expected": {"zh": "应到", "en": "Expected"},
        "intake.scanned": {"zh": "已扫", "en": "Scanned"},
        "intake.missing": {"zh": "缺失 / 未扫", "en": "Missing / not yet"},
        "intake.extra": {"zh": "多出", "en": "Extra"},
        "intake.damaged": {"zh": "破损/渗漏", "en": "Damaged"},
        "intake.summary": {"zh": "差异汇总", "en": "Discrepancy summary"},
        "intake.affected": {"zh": "受影响居民 {n} 人", "en": "{n} residents affected"},
        "intake.belongs": {"zh": "属于 {where}", "en": "belongs to {where}"},
        "where.manifest": {"zh": "本箱清单", "en": "this box's manifest"},
        "where.other_box": {"zh": "其他箱", "en": "another box"},
        "where.unboxed": {"zh": "未装箱", "en": "no box"},
        "where.unbound": {"zh": "无人绑定", "en": "never bound"},
        "cond.ok": {"zh": "完好", "en": "ok"},
        "cond.damaged": {"zh": "破损", "en": "damaged"},
        "cond.leaking": {"zh": "渗漏", "en": "leaking"},
        "intake.scanned_tube": {"zh": "已登记 {tube}", "en": "Recorded {tube}"},
    }
)
link(Link("nav.intake", "/ui/intake", ("lab",), order=22))


@get("/ui/intake", include_in_schema=False, opt=roles("lab"))
async def intake_desk(request: Request[Any, Any, Any]) -> Any:
    return await page(
        request,
        "intake.html",
        "intake.",
        "where.",
        "cond.",
        "state.",
        box=request.query_params.get("box", ""),
    )


#: Seconds between two looks at the box: a scan at another desk shows within this.
EVERY = 1.0


@get("/ui/intake/{box:str}/events", include_in_schema=False, opt=roles("lab"))
async def intake_events(request: Request[Any, Any, Any], box: FromPath[str]) -> ServerSentEvent:
    """``changed`` whenever the box's state or its intake scans change (another desk
    scanning the same box included); the page then reads the lists from the API."""
    svc = services(request)
    round_id = request.query_params.get("round", "")
    token = request.cookies.get(TOKEN_COOKIE, "")
    device = request.state.device
    boxer = svc.boxer
    boxer.may_read(device, await boxer.box(round_id, box))
    code = (await boxer.box(round_id, box)).box
    redis = svc.redis

    async def stream() -> AsyncGenerator[ServerSentEventMessage, None]:
        seen = ""
        while True:
            try:
                if token:
                    await svc.devices.authenticate(token)
            except AuthError:
                yield ServerSentEventMessage(event="signout", data="signout")
                return
            state = await redis.hget(keys.box(round_id, code), "state")
            scanned = await redis.hlen(keys.intake(round_id, code))
            now = f"{state!r}:{scanned}"
            if now != seen:
                seen = now
                yield ServerSentEventMessage(event="changed", data=now)
            await asyncio.sleep(EVERY)

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-store"})


ROUTES = [intake_desk, intake_events]
