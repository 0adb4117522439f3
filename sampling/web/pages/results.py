"""The lab's results clerk, ``/ui/results``: upload a lab CSV or HL7 file, dry run
first; the row-level report on the page (stored, duplicate, held, orphan, refused,
each row's reason) and as a CSV download; a template to download. Held results
are resolved here by a lab supervisor (or an admin): both values side by side,
keep, take the other, or re-test, with a reason (``sampling.lab.review``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from sampling.web import i18n
from sampling.web.layer import Link, link, roles
from sampling.web.pages.chain import page

#: The template a lab fills in: the columns ``sampling.lab.parse`` reads first.
TEMPLATE = (
    "tube,outcome,ct_orf1ab,ct_n,lab,tested_at\r\n"
    "T000000000013,negative,,,L1,2022-05-01T14:03:00+08:00\r\n"
    "T000000000021,positive,22.5,24.1,L1,2022-05-01T14:05:00+08:00\r\n"
)

i18n.register(
    {
        "nav.results": {"zh": "检测结果", "en": "Results"},
        "results.title": {"zh": "检测结果上传", "en": "Lab results"},
        "results.file": {"zh": "结果文件（CSV 或 HL7）", "en": "Results file (CSV or HL7)"},
        "results.dry": {"zh": "① 试运行（不保存）", "en": "① Dry run (stores nothing)"},
        "results.store": {"zh": "② 正式导入", "en": "② Import for real"},
        "results.template": {"zh": "下载模板", "en": "Download the template"},
        "results.download": {"zh": "下载逐行报告（CSV）", "en": "Download the row report (CSV)"},
        "results.report_dry": {
            "zh": "试运行结果：未保存任何数据",
            "en": "Dry run: nothing was stored",
        },
        "results.report_real": {"zh": "导入结果", "en": "Import report"},
        "results.rows_in": {"zh": "读入行数", "en": "Rows in"},
        "results.need_dry": {
            "zh": "请先对该文件试运行，再正式导入。",
            "en": "Dry-run this file first, then import it.",
        },
        "results.held_title": {"zh": "待复核的冲突结果", "en": "Held (conflicting) results"},
        "results.no_held": {"zh": "没有待复核的结果。", "en": "No result is held."},
        "results.stored_value": {"zh": "已存结果", "en": "Stored result"},
        "results.held_value": {"zh": "冲突结果", "en": "Held result"},
        "results.keep": {"zh": "保留已存结果", "en": "Keep the stored result"},
        "results.take": {"zh": "采用此结果", "en": "Take this result"},
        "results.retest": {"zh": "要求复检", "en": "Ask for a re-test"},
        "results.reason": {"zh": "理由（必填）", "en": "Reason (required)"},
        "results.resolve": {"zh": "提交决定", "en": "Decide"},
        "results.resolved": {
            "zh": "已处理 {tube}：{decision}",
            "en": "Resolved {tube}: {decision}",
        },
        "results.none": {"zh": "无", "en": "none"},
        "results.tested": {"zh": "检测于 {time}", "en": "tested {time}"},
        "status.stored": {"zh": "已保存", "en": "stored"},
        "why.stored": {"zh": "新结果", "en": "a new result"},
        "why.duplicate": {
            "zh": "与已存结果相同，只存一次",
            "en": "the same result was stored before",
        },
        "why.held": {
            "zh": "与已存结果不一致，待主管复核",
            "en": "disagrees with the stored result: held for a supervisor",
        },
        "why.orphan": {"zh": "本轮无人绑定此试管", "en": "no one bound this tube in the round"},
        "status.duplicate": {"zh": "重复", "en": "duplicate"},
        "status.held": {"zh": "冲突待复核", "en": "held"},
        "status.orphan": {"zh": "无主", "en": "orphan"},
        "status.refused": {"zh": "拒收", "en": "refused"},
        "outcome.negative": {"zh": "阴性", "en": "negative"},
        "outcome.positive": {"zh": "阳性", "en": "positive"},
        "outcome.invalid": {"zh": "无效", "en": "invalid"},
        "col.row": {"zh": "行", "en": "Row"},
        "col.status": {"zh": "结果", "en": "Status"},
        "col.reason": {"zh": "原因", "en": "Reason"},
    }
)
link(Link("nav.results", "/ui/results", ("lab", "admin"), order=23))


@get("/ui/results", include_in_schema=False, opt=roles("lab", "admin"))
async def results_desk(request: Request[Any, Any, Any]) -> Any:
    return await page(request, "results.html", "results.", "status.", "why.", "outcome.", "col.")


@get("/ui/results/template.csv", include_in_schema=False, opt=roles("lab", "admin"))
async def template(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(
        ("\ufeff" + TEMPLATE).encode(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="results-template.csv"'},
    )


ROUTES = [results_desk, template]
