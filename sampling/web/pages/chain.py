"""What the chain's pages share: the round a page works on, and its words for scripts.

The sealer's, courier's, lab desk's, results clerk's and grid team's pages are
thin: the page is a form and a few tables, and its script (``static/chain/``)
calls the same JSON API a device does, as the signed-in caller, so the roles and
scopes are the API's. Refusals come back as RFC 9457 problems; the script shows
them in a banner no one can miss, in the page's language when the code is known
(``refusal.<code>``) and always with the server's own detail.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from sampling.api.auth import services
from sampling.binding import keys as binding_keys
from sampling.web import i18n
from sampling.web.layer import device_of, lang, render

if TYPE_CHECKING:
    from litestar import Request
    from litestar.response import Template

i18n.register(
    {
        "chain.round": {"zh": "轮次", "en": "Round"},
        "chain.no_round": {"zh": "没有进行中的轮次。", "en": "No open round."},
        "chain.refused": {"zh": "被拒绝", "en": "Refused"},
        "chain.done": {"zh": "完成", "en": "Done"},
        "chain.dismiss": {"zh": "知道了", "en": "OK"},
        "chain.working": {"zh": "处理中…", "en": "Working…"},
        "refusal.tube_open": {
            "zh": "试管尚未封管，不能装箱",
            "en": "The tube is still open: it cannot be boxed",
        },
        "refusal.tube_count_mismatch": {"zh": "管数不符，不能封箱", "en": "Tube count disagrees"},
        "refusal.sample_count_mismatch": {
            "zh": "样本数不符，不能封箱",
            "en": "Sample count disagrees",
        },
        "refusal.wrong_lab": {
            "zh": "此箱不是送往本实验室的，请勿开箱",
            "en": "This box is for another lab: do not open it",
        },
        "refusal.tube_in_box": {"zh": "试管已在其他箱中", "en": "The tube is in another box"},
        "refusal.tube_other_site": {
            "zh": "试管属于其他采样点",
            "en": "The tube belongs to another site",
        },
        "refusal.tube_not_found": {"zh": "没有这支试管", "en": "No such tube"},
        "refusal.box_used": {"zh": "箱码已使用过", "en": "The box code was used before"},
        "refusal.garbled_code": {"zh": "条码读取错误，请重扫", "en": "Code misread: scan again"},
        "refusal.forbidden": {"zh": "无权操作", "en": "Not allowed"},
        "refusal.resident_already_sampled": {
            "zh": "该居民本轮已采样",
            "en": "Already sampled this round",
        },
        "refusal.result_changed": {
            "zh": "结果已变化，请刷新后再决定",
            "en": "The result changed: reload",
        },
        "refusal.bad_input": {"zh": "输入有误", "en": "Check the input"},
    }
)


async def pick_round(request: Request[Any, Any, Any]) -> str | None:
    """``?round=`` when given, else the newest open round (a desk works on today's)."""
    asked = request.query_params.get("round")
    if asked:
        return str(asked)
    rounds = await services(request).rounds.all()
    open_ = [r for r in rounds if r.state == "open"] or rounds
    return open_[-1].id if open_ else None


def words(request: Request[Any, Any, Any], *prefixes: str) -> Markup:
    """The page's words (keys starting with ``prefixes``) as JSON for its script."""
    language = lang(request)
    chosen = {
        key: text[language]
        for key, text in i18n.CATALOGUE.items()
        if key.startswith((*prefixes, "chain.", "refusal."))
    }
    # Safe inside <script type="application/json">: no "</" can close the element.
    return Markup(json.dumps(chosen, ensure_ascii=False).replace("</", "<\\/"))


async def page(
    request: Request[Any, Any, Any], template: str, *prefixes: str, **ctx: Any
) -> Template:
    """Render a chain page: its round, words, zone and the device's last sequence number."""
    round_id = await pick_round(request)
    device = device_of(request)
    seq = 0
    if round_id and device is not None:
        redis = services(request).redis
        seq = int(await redis.strlen(binding_keys.oplog(round_id, device.id))) // 8
    return render(
        request,
        template,
        round_id=round_id,
        words=words(request, *prefixes),
        seq=seq,
        **ctx,
    )
