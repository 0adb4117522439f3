"""The pages' words, Chinese first (zh-CN) and English, keyed by message id.

A page never holds a sentence of its own: templates call ``t("key")`` and route
code calls :func:`text`. The language is the ``lang`` cookie the switch in the
page header sets; without it, Chinese. A key missing from the catalogue raises
at render time in tests (``strict``) rather than showing an empty label, and
:func:`check` (run by the tests) finds a key with one language missing.

To add words: a page module calls :func:`register` with its own entries (both
languages) at import, so pages do not share one long dict; the layout's words
are here. Keys are
``area.name`` (``nav.dashboard``, ``dash.coverage``); ``{name}`` placeholders are
filled by keyword arguments.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT: Lang = "zh"
#: The ``lang`` attribute of <html> per language.
HTML_LANG = {"zh": "zh-CN", "en": "en"}

CATALOGUE: dict[str, dict[Lang, str]] = {
    # the layout
    "app.name": {"zh": "核酸采样追踪", "en": "Sample tracking"},
    "nav.home": {"zh": "首页", "en": "Home"},
    "nav.docs": {"zh": "接口文档", "en": "API docs"},
    "nav.signout": {"zh": "退出登录", "en": "Sign out"},
    "nav.signin": {"zh": "登录", "en": "Sign in"},
    "nav.signed_in_as": {"zh": "已登录：{device}（{role}）", "en": "Signed in: {device} ({role})"},
    "lang.switch": {"zh": "English", "en": "中文"},
    "role.scanner": {"zh": "采样员", "en": "sampler"},
    "role.sealer": {"zh": "封箱员", "en": "sealer"},
    "role.courier": {"zh": "转运员", "en": "courier"},
    "role.lab": {"zh": "实验室", "en": "lab"},
    "role.admin": {"zh": "管理员", "en": "admin"},
    "role.grid": {"zh": "网格员", "en": "grid team"},
    "role.viewer": {"zh": "指挥中心", "en": "command centre"},
    # sign-in
    "login.title": {"zh": "登录", "en": "Sign in"},
    "login.token": {"zh": "设备或工作人员令牌", "en": "Device or staff token"},
    "login.hint": {
        "zh": "令牌只需输入一次，保存在本浏览器中，不会出现在网址里。",
        "en": "Enter the token once; this browser keeps it, never in a web address.",
    },
    "login.submit": {"zh": "登录", "en": "Sign in"},
    "login.failed": {"zh": "登录失败：{reason}", "en": "Sign-in failed: {reason}"},
    "login.expired": {
        "zh": "登录已失效（令牌过期或被吊销），请重新登录。",
        "en": "Your sign-in ended (token expired or revoked); sign in again.",
    },
    # landing page
    "home.title": {"zh": "可用页面", "en": "Your pages"},
    "home.none": {
        "zh": "此角色暂无可打开的页面。",
        "en": "There is no page for this role yet.",
    },
    "home.round": {"zh": "轮次 {round}", "en": "Round {round}"},
    "home.open": {"zh": "进行中", "en": "open"},
    "home.closed": {"zh": "已结束", "en": "closed"},
    "home.no_rounds": {"zh": "暂无轮次。", "en": "No rounds yet."},
    # errors
    "error.forbidden": {"zh": "无权访问", "en": "Not allowed"},
    "error.not_found": {"zh": "未找到", "en": "Not found"},
    "error.back": {"zh": "返回首页", "en": "Back to the start page"},
    # the dashboard
    "nav.dashboard": {"zh": "指挥大屏", "en": "Dashboard"},
    "nav.grid": {"zh": "网格 {grid}", "en": "Grid {grid}"},
    "dash.title": {"zh": "指挥大屏 · 轮次 {round}", "en": "Dashboard · round {round}"},
    "dash.as_of": {"zh": "数据时间 {time}", "en": "As of {time}"},
    "dash.archived_at": {"zh": "归档于 {time}", "en": "archived {time}"},
    "dash.not_archived": {"zh": "尚未归档", "en": "not archived yet"},
    "dash.live": {"zh": "实时", "en": "live"},
    "dash.offline": {"zh": "连接中断，正在重连…", "en": "Connection lost, reconnecting…"},
    "dash.expected": {"zh": "应检人数", "en": "Residents expected"},
    "dash.sampled": {"zh": "已采样", "en": "Sampled"},
    "dash.coverage_pct": {"zh": "覆盖率", "en": "Coverage"},
    "dash.positive_pools": {"zh": "阳性混管", "en": "Positive pools"},
    "dash.scans_chart": {"zh": "每分钟扫码（近一小时）", "en": "Scans per minute (last hour)"},
    "dash.pipeline": {"zh": "样本流转", "en": "Custody pipeline"},
    "stage.open": {"zh": "采样中", "en": "Open"},
    "stage.closed_unboxed": {"zh": "已封管未装箱", "en": "Closed, not boxed"},
    "stage.boxed": {"zh": "已装箱", "en": "Boxed"},
    "stage.sealed": {"zh": "已封箱", "en": "Sealed"},
    "stage.in_transit": {"zh": "转运中", "en": "In transit"},
    "stage.received": {"zh": "已接收", "en": "Received"},
    "stage.resulted": {"zh": "已出结果", "en": "Resulted"},
    "dash.boxes": {"zh": "箱子", "en": "Boxes"},
    "box.open": {"zh": "装箱中", "en": "open"},
    "box.sealed": {"zh": "已封箱", "en": "sealed"},
    "box.picked_up": {"zh": "已取走", "en": "picked up"},
    "box.received": {"zh": "已接收", "en": "received"},
    "box.intake_closed": {"zh": "已核收", "en": "intake closed"},
    "outcome.negative": {"zh": "阴性", "en": "negative"},
    "outcome.positive": {"zh": "阳性", "en": "positive"},
    "outcome.invalid": {"zh": "无效", "en": "invalid"},
    "overdue.unboxed": {"zh": "封管未装箱", "en": "closed, not boxed"},
    "overdue.sealed": {"zh": "封箱未取走", "en": "sealed, not picked up"},
    "overdue.transit": {"zh": "转运中", "en": "in transit"},
    "overdue.intake": {"zh": "接收未核收", "en": "received, intake open"},
    "overdue.result": {"zh": "接收未出结果", "en": "received, no result"},
    "dash.results": {"zh": "检测结果", "en": "Results"},
    "dash.resample": {"zh": "复采单", "en": "Re-sample orders"},
    "resample.open": {"zh": "待复采", "en": "open"},
    "resample.sampled": {"zh": "已复采", "en": "sampled"},
    "resample.resulted": {"zh": "已出结果", "en": "resulted"},
    "dash.devices": {"zh": "设备", "en": "Devices"},
    "dash.devices_active": {"zh": "5分钟内活跃", "en": "active (5 min)"},
    "dash.devices_silent": {"zh": "失联", "en": "silent"},
    "dash.devices_gaps": {"zh": "序号缺口", "en": "with gaps"},
    "dash.overdue": {"zh": "超时", "en": "Overdue"},
    "dash.oldest": {"zh": "最久 {age}", "en": "oldest {age}"},
    "dash.coverage": {"zh": "覆盖情况", "en": "Coverage"},
    "dash.all_streets": {"zh": "全部街道", "en": "All streets"},
    "level.street": {"zh": "街道", "en": "Street"},
    "level.community": {"zh": "社区", "en": "Community"},
    "level.grid": {"zh": "网格", "en": "Grid"},
    "dash.doors": {"zh": "敲门清单", "en": "Door list"},
    "dash.alarms": {"zh": "告警", "en": "Alarms"},
    "dash.no_alarms": {"zh": "暂无告警", "en": "No alarms"},
    "dash.age": {"zh": "已 {age}", "en": "{age} ago"},
    "dash.no_data": {"zh": "暂无数据", "en": "No data yet"},
    "dash.unavailable": {
        "zh": "实时数据暂不可用：{reason}",
        "en": "Live figures are not available: {reason}",
    },
    "alarm.overdue_tube": {"zh": "试管超时", "en": "Tube overdue"},
    "alarm.overdue_box": {"zh": "箱子超时", "en": "Box overdue"},
    "alarm.no_result": {"zh": "已接收未出结果", "en": "Received, no result"},
    "alarm.positive_pool": {"zh": "阳性混管", "en": "Positive pool"},
    "alarm.silent_device": {"zh": "设备失联", "en": "Device silent"},
    "alarm.device_gap": {"zh": "设备序号缺口", "en": "Device sequence gap"},
    "alarm.seal_refused": {"zh": "封箱被拒", "en": "Seal refused"},
    "alarm.intake_discrepancy": {"zh": "接收差异", "en": "Intake discrepancy"},
    "col.name": {"zh": "名称", "en": "Name"},
    "col.expected": {"zh": "应检", "en": "Expected"},
    "col.sampled": {"zh": "已采", "en": "Sampled"},
    "col.coverage": {"zh": "覆盖率", "en": "Coverage"},
    "col.kind": {"zh": "类型", "en": "Kind"},
    "col.subject": {"zh": "对象", "en": "Subject"},
    "col.age": {"zh": "时长", "en": "Age"},
    "col.detail": {"zh": "说明", "en": "Detail"},
    "col.stage": {"zh": "环节", "en": "Stage"},
    "col.count": {"zh": "数量", "en": "Count"},
    "col.time": {"zh": "时间", "en": "Time"},
    "col.event": {"zh": "事件", "en": "Event"},
    "col.device": {"zh": "设备", "en": "Device"},
    "col.place": {"zh": "地点", "en": "Place"},
    # timelines
    "timeline.title": {"zh": "{kind} {code} 的记录", "en": "History of {kind} {code}"},
    "timeline.none": {"zh": "没有记录。", "en": "No history."},
    "kind.tube": {"zh": "试管", "en": "tube"},
    "kind.box": {"zh": "箱子", "en": "box"},
    "kind.device": {"zh": "设备", "en": "device"},
    "event.opened": {"zh": "开管", "en": "opened"},
    "event.closed": {"zh": "封管", "en": "closed"},
    "event.boxed": {"zh": "装箱", "en": "boxed"},
    "event.sealed": {"zh": "封箱", "en": "sealed"},
    "event.handed_over": {"zh": "交接", "en": "handed over"},
    "event.picked_up": {"zh": "取走", "en": "picked up"},
    "event.received": {"zh": "实验室接收", "en": "received at the lab"},
    "event.intake": {"zh": "核收", "en": "intake"},
    "event.box.opened": {"zh": "开箱", "en": "opened"},
    "event.intake_closed": {"zh": "核收完毕", "en": "intake closed"},
    "event.missing": {"zh": "核收时缺失", "en": "missing at intake"},
    "device.role": {"zh": "角色", "en": "Role"},
    "device.registered": {"zh": "注册时间", "en": "Registered"},
    "device.state": {"zh": "令牌状态", "en": "Token"},
    "device.valid": {"zh": "有效", "en": "valid"},
    "device.revoked": {"zh": "已吊销", "en": "revoked"},
    "device.last_seen": {"zh": "最后上报 {time}（{age}前）", "en": "last seen {time} ({age} ago)"},
    "device.missing": {"zh": "缺失 {n} 个序号", "en": "{n} sequence numbers missing"},
    # grid page
    "grid.title": {"zh": "网格 {grid} · 轮次 {round}", "en": "Grid {grid} · round {round}"},
    "grid.to_visit": {"zh": "待上门/提醒：{n} 人", "en": "To visit or remind: {n}"},
    "col.building": {"zh": "楼栋", "en": "Building"},
    "col.unit": {"zh": "单元", "en": "Unit"},
    "col.household": {"zh": "户", "en": "Household"},
    "col.resident_name": {"zh": "姓名", "en": "Name"},
    "col.phone": {"zh": "电话", "en": "Phone"},
    "col.mark": {"zh": "方式", "en": "How"},
    "mark.door_medical": {"zh": "上门采样（医护）", "en": "door, medical staff"},
    "mark.home_sampling": {"zh": "入户采样", "en": "sample at home"},
    "mark.reminder": {"zh": "提醒", "en": "reminder"},
    "grid.doors_hint": {
        "zh": "下载本网格的敲门清单（未采样的应检居民）。",
        "en": "Download this grid's knock-on-door list (residents not yet sampled).",
    },
}


class MissingMessage(KeyError):
    pass


def lang_of(cookie: str | None) -> Lang:
    """The language a ``lang`` cookie asks for; Chinese when absent or unknown."""
    return "en" if cookie == "en" else DEFAULT


def text(key: str, lang: Lang = DEFAULT, /, **values: object) -> str:
    """The message ``key`` in ``lang`` with ``{name}`` placeholders filled."""
    try:
        words = CATALOGUE[key][lang]
    except KeyError:
        raise MissingMessage(f"no message {key!r} in {lang}") from None
    return words.format(**values) if values else words


def register(messages: dict[str, dict[Lang, str]]) -> None:
    """Add a page's words; a key already taken with other words is a programming error."""
    for key, words in messages.items():
        if CATALOGUE.get(key, words) != words:
            raise ValueError(f"message {key!r} is already defined differently")
        CATALOGUE[key] = words


def check() -> list[str]:
    """Keys that lack a language: the tests keep this empty."""
    return [key for key, words in CATALOGUE.items() if set(words) != set(LANGS)]
