"""The handheld's pages: pairing, and the offline-first sampling flow ``/ui/scan``.

``/ui/scan`` is one server-rendered shell plus ``static/scan/scan.js``: every
operation is written to the browser's IndexedDB (op id, the device's next
sequence number, the device's time) before the page shows it as done, and goes
to ``POST /v1/rounds/{round}/batches`` at once when online, in batches of at
most ``Settings.max_batch`` when the network comes back. The service worker
``/ui/sw.js`` (scope ``/ui/``) serves the shell and its assets with no network.

Pairing: an admin makes a one-time code at ``/ui/pair`` (text and QR); the
handheld types or scans it at ``/ui/scan/pair``, which exchanges it once and
puts the token in the layer's HttpOnly cookie; the token is never shown to the
page's script, put in a URL or logged.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Annotated, Any

import segno
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from sampling import localtime
from sampling.api.auth import CSRF_COOKIE, TOKEN_COOKIE, services
from sampling.api.pairing import client_key, pair_limiter
from sampling.binding.models import POOL_SIZES
from sampling.errors import SamplingError
from sampling.schema import Base
from sampling.web import i18n
from sampling.web.layer import STATIC, Link, lang, link, render, roles, tz
from sampling.web.session import KEEP_SECONDS, _cookie

SCAN = link(Link("nav.scan", "/ui/scan", ("scanner",), order=5))
PAIR = link(Link("nav.pair", "/ui/pair", ("admin",), order=60))

i18n.register(
    {
        "nav.scan": {"zh": "采样", "en": "Sampling"},
        "nav.pair": {"zh": "配对手持机", "en": "Pair a handheld"},
        "scan.title": {"zh": "采样", "en": "Sampling"},
        "scan.round": {"zh": "轮次", "en": "Round"},
        "scan.no_round": {"zh": "没有开放的轮次", "en": "No open round"},
        "scan.pool": {"zh": "混管人数", "en": "Pool size"},
        "scan.field": {"zh": "扫码或输入", "en": "Scan or type"},
        "scan.enter": {"zh": "确定", "en": "Enter"},
        "scan.camera": {"zh": "拍照识别", "en": "Photo"},
        "scan.undo": {"zh": "撤销上一个", "en": "Undo last"},
        "scan.close": {"zh": "封管", "en": "Close tube"},
        "scan.waiting": {"zh": "待上传", "en": "Waiting"},
        "scan.last_upload": {"zh": "上次上传", "en": "Last upload"},
        "scan.never": {"zh": "尚无", "en": "never"},
        "scan.online": {"zh": "在线", "en": "online"},
        "scan.offline": {"zh": "离线（已保存在本机）", "en": "offline (kept on this device)"},
        "scan.attention": {"zh": "需要处理", "en": "Needs attention"},
        "scan.resolve": {"zh": "已处理", "en": "Done"},
        "scan.pair.title": {"zh": "配对手持机", "en": "Pair this handheld"},
        "scan.pair.code": {"zh": "配对码", "en": "Pairing code"},
        "scan.pair.hint": {
            "zh": "扫描管理员屏幕上的二维码，或输入配对码（10 分钟内有效，仅一次）。",
            "en": "Scan the QR code on the admin's screen or type the code "
            "(valid 10 minutes, once).",
        },
        "scan.pair.submit": {"zh": "配对", "en": "Pair"},
        "scan.pair.failed": {"zh": "配对失败：{reason}", "en": "Pairing failed: {reason}"},
        "scan.pair.pairing_failed": {
            "zh": "配对码无效、已用过或已过期（10 分钟内有效，仅一次）。请管理员重新生成。",
            "en": "This code is unknown, used or expired (10 minutes, once): ask the admin "
            "for a new one.",
        },
        "scan.pair.bad_input": {
            "zh": "配对码是 10 位字母和数字，如 ABCDE-FGHJK。请重新输入或扫码。",
            "en": "A pairing code has 10 letters and digits, like ABCDE-FGHJK: type it again.",
        },
        "pair.title": {"zh": "配对手持机", "en": "Pair a handheld"},
        "pair.device": {"zh": "设备", "en": "Device"},
        "pair.make": {"zh": "生成配对码", "en": "Make a pairing code"},
        "pair.until": {
            "zh": "{device} 的配对码，{until} 前有效，只能用一次：",
            "en": "Pairing code for {device}, valid once until {until}:",
        },
        "pair.hint": {
            "zh": "在手持机上打开 /ui/scan/pair，扫描此二维码或输入配对码。",
            "en": "On the handheld open /ui/scan/pair and scan this QR code or type the code.",
        },
    }
)

#: The words scan.js shows, per language (sent with the page, so they work offline).
JS_WORDS: dict[str, dict[i18n.Lang, str]] = {
    "scan_tube": {"zh": "请扫描试管条码", "en": "Scan the tube barcode"},
    "scan_resident": {"zh": "请扫描居民码", "en": "Scan the resident's code"},
    "tube_full": {
        "zh": "本管已满，已自动封管。请扫描新试管。",
        "en": "Tube full and closed. Scan a new tube.",
    },
    "tube_closed": {"zh": "已封管。请扫描新试管。", "en": "Tube closed. Scan a new tube."},
    "need_tube": {"zh": "请先扫描试管条码", "en": "Scan a tube barcode first"},
    "is_box": {
        "zh": "这是箱码，不是试管或居民码",
        "en": "This is a box code, not a tube or resident",
    },
    "bad_code": {
        "zh": "码无效：校验位不符或格式不对",
        "en": "Not a valid code: check character or form wrong",
    },
    "pick": {"zh": "是不是下面这个？点一下选择", "en": "Did you mean one of these? Tap it"},
    "retype": {
        "zh": "没有可能的更正，请重新扫描或输入",
        "en": "No likely correction: scan or type again",
    },
    "recorded": {"zh": "已记录", "en": "Recorded"},
    "undone": {"zh": "已撤销", "en": "Undone"},
    "refused": {"zh": "被拒绝", "en": "Refused"},
    "title_resident_already_sampled": {"zh": "该居民本轮已采样", "en": "Already sampled"},
    "title_tube_used": {"zh": "试管条码已用过", "en": "Tube already used"},
    "title_tube_full": {"zh": "试管已满", "en": "Tube full"},
    "title_tube_closed": {"zh": "试管已封管", "en": "Tube closed"},
    "title_tube_not_found": {"zh": "试管未开管", "en": "Tube not open"},
    "title_tube_other_site": {"zh": "试管属于其他采样点", "en": "Tube of another site"},
    "title_risk_needs_single_tube": {"zh": "须单人单管", "en": "Single tube needed"},
    "title_round_closed": {"zh": "本轮已结束", "en": "Round closed"},
    "title_need_tube": {"zh": "还没有试管", "en": "No tube yet"},
    "title_box": {"zh": "这是箱码", "en": "A box code"},
    "title_garbled_code": {"zh": "码无效", "en": "Not a valid code"},
    "next_tube_not_found": {"zh": "先扫描试管条码开管。", "en": "Scan the tube barcode first."},
    "next_tube_other_site": {"zh": "使用本采样点开的试管。", "en": "Use a tube opened here."},
    "next_need_tube": {"zh": "扫描一支试管的条码。", "en": "Scan a tube's barcode."},
    "next_box": {"zh": "扫描试管或居民码。", "en": "Scan a tube or a resident's code."},
    "next_garbled_code": {
        "zh": "重新扫描，或仔细输入。",
        "en": "Scan again, or type it carefully.",
    },
    "next_default": {"zh": "请按提示处理后继续", "en": "Do what the message says, then go on"},
    "next_resident_already_sampled": {
        "zh": "不要重复采样。请扫描下一位居民。",
        "en": "Do not swab again. Scan the next resident.",
    },
    "next_tube_used": {"zh": "换一支新试管并扫描。", "en": "Take a new tube and scan it."},
    "next_tube_full": {"zh": "扫描一支新试管。", "en": "Scan a new tube."},
    "next_tube_closed": {"zh": "扫描一支新试管。", "en": "Scan a new tube."},
    "next_risk_needs_single_tube": {
        "zh": "此人须单人单管：选 1 人管，扫描新试管后再扫此人。",
        "en": "Sample alone: choose pool 1, scan a new tube, then this resident.",
    },
    "next_round_closed": {"zh": "联系指挥部确认开放的轮次。", "en": "Ask the command centre."},
    "clock": {
        "zh": "本机时钟不准，已按服务器时间记录。请校正日期和时间。",
        "en": "This device's clock is off; the server's time was recorded. Set the date and time.",
    },
    "photo_sending": {"zh": "正在识别照片…", "en": "Reading the photo…"},
    "photo_found": {
        "zh": "照片中读到：{code}。正确吗？",
        "en": "Read from the photo: {code}. Correct?",
    },
    "photo_none": {
        "zh": "照片中没有读到有效的码，请重拍或输入。",
        "en": "No valid code in the photo: take another or type it.",
    },
    "photo_offline": {
        "zh": "离线时无法识别照片，请输入码。",
        "en": "Photos need the network: type the code.",
    },
    "confirm": {"zh": "确认", "en": "Confirm"},
    "cancel": {"zh": "取消", "en": "Cancel"},
    "signin": {"zh": "登录已失效，请重新配对。", "en": "Signed out: pair this handheld again."},
    "online": {"zh": "在线", "en": "online"},
    "offline": {"zh": "离线（已保存在本机）", "en": "offline (kept on this device)"},
    "kept": {
        "zh": "已保存在本机，联网后自动上传",
        "en": "Kept on this device; uploads when online",
    },
}


def _words(request: Request[Any, Any, Any]) -> dict[str, str]:
    language = lang(request)
    return {key: words[language] for key, words in JS_WORDS.items()}


@get("/ui/scan", include_in_schema=False, opt=roles("scanner", "admin"))
async def scan_page(request: Request[Any, Any, Any]) -> Any:
    svc = services(request)
    device = request.state.device
    rounds = [r for r in await svc.rounds.all() if r.state == "open"]
    config = {
        "device": device.id,
        "site": device.site,
        "rounds": [{"id": r.id, "name": r.name, "pool": r.pool} for r in rounds],
        "pools": list(POOL_SIZES),
        "maxBatch": svc.settings.max_batch,
        "tz": tz(request),
        "lang": lang(request),
        "words": _words(request),
    }
    return render(
        request,
        "scan.html",
        rounds=rounds,
        pools=POOL_SIZES,
        config=json.dumps(config, ensure_ascii=False).replace("</", "<\\/"),
    )


@get("/ui/sw.js", include_in_schema=False, sync_to_thread=False)
def service_worker() -> Response[bytes]:
    # Served from /ui/ so that its scope covers /ui/scan and /ui/static; never
    # cached by HTTP, so a new version reaches the handheld on its next load.
    return Response(
        (STATIC / "scan" / "sw.js").read_bytes(),
        media_type="application/javascript",
        headers={"Cache-Control": "no-cache"},
    )


class PairForm(Base, frozen=True):
    code: str = ""


@get("/ui/scan/pair", include_in_schema=False, sync_to_thread=False)
def pair_form(request: Request[Any, Any, Any]) -> Any:
    return render(request, "scan_pair.html", error="")


@post("/ui/scan/pair", include_in_schema=False, status_code=303)
async def pair_exchange(
    request: Request[Any, Any, Any],
    data: Annotated[PairForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Any:
    try:
        pair_limiter(request).take(client_key(request))
        made = await services(request).pairing.exchange(data.code)
    except SamplingError as exc:
        key = f"scan.pair.{exc.code}"
        reason = i18n.text(key, lang(request)) if key in i18n.CATALOGUE else exc.message
        error = i18n.text("scan.pair.failed", lang(request), reason=reason)
        return render(request, "scan_pair.html", status=exc.status, error=error)
    keep = KEEP_SECONDS
    if made.device.expires_at:
        keep = max(1, int(made.device.expires_at - time.time()))
    secure = request.url.scheme == "https"
    response: Response[Any] = Redirect("/ui/scan", status_code=303)
    response.set_cookie(_cookie(TOKEN_COOKIE, made.token, keep, httponly=True, secure=secure))
    csrf = secrets.token_urlsafe(24)
    response.set_cookie(_cookie(CSRF_COOKIE, csrf, keep, httponly=False, secure=secure))
    return response


@get("/ui/pair", include_in_schema=False, opt=roles("admin"))
async def admin_pair(request: Request[Any, Any, Any]) -> Any:
    devices = [d for d in await services(request).devices.all() if not d.revoked]
    return render(request, "pair.html", devices=devices)


class MakeForm(Base, frozen=True):
    device: str = ""


@post("/ui/pair", include_in_schema=False, opt=roles("admin"), status_code=200)
async def admin_make_code(
    request: Request[Any, Any, Any],
    data: Annotated[MakeForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Any:
    made = await services(request).pairing.create(data.device)
    qr = segno.make_qr(made.code, error="m").svg_inline(scale=8, border=4, omitsize=True)
    until = localtime.hm(made.expires_at, tz(request))
    return render(request, "pair_code.html", made=made, qr=qr, until=until)


ROUTES = [scan_page, service_worker, pair_form, pair_exchange, admin_pair, admin_make_code]
