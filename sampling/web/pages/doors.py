"""The grid team's page, ``/ui/doors``: its own grid's door list in walking order,
each household with its marks (door by medical staff, sample at home, reminder),
labels and health-code colour, the grid's re-sample orders on the same list
(positive pools first, urgent), and per household an outcome: sampled at home
(tube and residents, bound with the team's device through the binding rules),
not at home, refused, moved away, medical staff needed. A grid team opens only
its own grid (the API refuses another; the page shows that refusal)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from sampling.errors import Forbidden
from sampling.lab.doorlog import check_grid
from sampling.web import i18n
from sampling.web.layer import Link, device_of, link, roles
from sampling.web.pages.chain import page

i18n.register(
    {
        "nav.doors": {"zh": "入户敲门", "en": "Door list"},
        "doors.title": {"zh": "网格 {grid} 敲门清单", "en": "Grid {grid}: door list"},
        "doors.pick": {"zh": "网格", "en": "Grid"},
        "doors.open": {"zh": "打开", "en": "Open"},
        "doors.resample": {"zh": "复采（阳性混管优先）", "en": "Re-samples (positive pools first)"},
        "doors.list": {"zh": "未采样住户（按楼栋单元顺序）", "en": "Not sampled (walking order)"},
        "doors.urgent": {"zh": "紧急复采", "en": "URGENT re-sample"},
        "doors.normal": {"zh": "复采", "en": "Re-sample"},
        "doors.none": {"zh": "本网格暂无待敲门住户。", "en": "No household to visit in this grid."},
        "doors.residents": {"zh": "{n} 人", "en": "residents: {n}"},
        "doors.tube": {"zh": "试管码", "en": "Tube"},
        "doors.codes": {"zh": "居民码（每行一个）", "en": "Resident codes (one a line)"},
        "doors.sampled_btn": {"zh": "已采样", "en": "Sampled"},
        "doors.recorded": {"zh": "已记录：{addr} {outcome}", "en": "Recorded: {addr} {outcome}"},
        "doors.last": {"zh": "上次：{outcome} {time}", "en": "Last: {outcome} {time}"},
        "doors.no_archive": {
            "zh": "清单来自最近一次归档，尚未归档时为空。",
            "en": "The list comes from the latest archive; empty before the first.",
        },
        "doors.pdf": {"zh": "打印清单（PDF）", "en": "Print the list (PDF)"},
        "outcome.sampled": {"zh": "已入户采样", "en": "sampled at home"},
        "outcome.not_home": {"zh": "不在家", "en": "not at home"},
        "outcome.refused": {"zh": "拒绝", "en": "refused"},
        "outcome.moved": {"zh": "已搬离", "en": "moved away"},
        "outcome.medical": {"zh": "需医护上门", "en": "medical staff needed"},
        "label.home_isolation": {"zh": "居家隔离", "en": "home isolation"},
        "label.elderly_alone": {"zh": "独居老人", "en": "elderly alone"},
        "label.disabled": {"zh": "残疾", "en": "disabled"},
        "label.home_observation": {"zh": "居家观察", "en": "home observation"},
        "label.assistance": {"zh": "低保", "en": "assistance"},
        "label.party_member": {"zh": "党员", "en": "party member"},
        "label.permanent": {"zh": "常住", "en": "permanent"},
        "label.vacant": {"zh": "空置", "en": "vacant"},
        "colour.green": {"zh": "绿码", "en": "green"},
        "colour.yellow": {"zh": "黄码", "en": "yellow"},
        "colour.red": {"zh": "红码", "en": "red"},
    }
)
link(Link("nav.doors", "/ui/doors", ("grid", "admin", "viewer"), order=24))


@get("/ui/doors", include_in_schema=False, opt=roles("grid", "admin", "viewer"))
async def doors_desk(request: Request[Any, Any, Any]) -> Any:
    device = device_of(request)
    asked = request.query_params.get("grid") or (device.grid if device else "")
    if device is not None:
        try:
            check_grid(device, asked)
        except Forbidden as exc:
            # The page refuses as the API does: a grid team sees its own grid only.
            raise Forbidden(exc.message, grid=device.grid) from exc
    return await page(
        request, "doors.html", "doors.", "mark.", "outcome.", "label.", "colour.", grid=asked
    )


ROUTES = [doors_desk]
