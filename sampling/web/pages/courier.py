"""The courier's page, ``/ui/courier``: the boxes handed to this courier, pick-up by
scanning the box's code (the second half of the two-party handover), and each
box's delivery as the lab desk scans it in. A courier sees only its own boxes:
the list is ``GET /v1/rounds/{round}/courier/boxes`` as the signed-in courier."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from sampling.web import i18n
from sampling.web.layer import Link, link, roles
from sampling.web.pages.chain import page

i18n.register(
    {
        "nav.courier": {"zh": "转运", "en": "Courier"},
        "courier.title": {"zh": "转运员", "en": "Courier"},
        "courier.scan": {"zh": "扫描箱码取件", "en": "Scan the box code to pick up"},
        "courier.place": {"zh": "取件地点", "en": "Pick-up place"},
        "courier.pickup": {"zh": "取件", "en": "Pick up"},
        "courier.picked": {"zh": "已取件：{box}", "en": "Picked up: {box}"},
        "courier.mine": {"zh": "交给我的箱子", "en": "Boxes handed to me"},
        "courier.none": {"zh": "暂无交接给你的箱子。", "en": "No box has been handed to you."},
        "courier.lab": {"zh": "送往", "en": "To lab"},
        "courier.since": {"zh": "时间", "en": "Since"},
        "courier.site": {"zh": "采样点", "en": "Site"},
        "courier.delivered": {"zh": "已送达实验室", "en": "Delivered to the lab"},
    }
)
link(Link("nav.courier", "/ui/courier", ("courier",), order=21))


@get("/ui/courier", include_in_schema=False, opt=roles("courier"))
async def courier_desk(request: Request[Any, Any, Any]) -> Any:
    return await page(request, "courier.html", "courier.", "state.")


ROUTES = [courier_desk]
