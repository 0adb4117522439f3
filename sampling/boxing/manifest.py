"""A sealed box's manifest as JSON and as the printable sheet the courier carries.

The sheet is an A4 page, bilingual (中文 / English): the box code as a Code 128
barcode (what the courier and the lab desk scan), the sampling point's Chinese
name (in the embedded CJK font of ``sampling.fonts``, as the door lists), the
seal's who and when in the district's time zone, the counts, and one row per
tube with its sample count, single (risk) tubes marked, in as many columns and
pages as the box needs.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import msgspec
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from sampling import localtime
from sampling.fonts import cjk_font

if TYPE_CHECKING:
    from sampling.boxing.models import Manifest

_ROWS = 40
_COLUMNS = 3
#: The mark beside a single (risk) tube, and its legend.
SINGLE = "★"
_NO_LAB = "（交接时指定）(named at handover)"


def as_json(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2)


def pdf(manifest: Manifest, tz: str = localtime.DEFAULT_TZ) -> bytes:
    font = cjk_font()
    buf = io.BytesIO()
    page = Canvas(buf, pagesize=A4, pageCompression=1)
    page.setTitle(f"转运箱清单 Box {manifest.box} manifest")
    page.setAuthor("sampling")
    tubes = manifest.tubes or []
    singles = set(manifest.singles)
    per_page = _ROWS * _COLUMNS
    pages = max(1, -(-len(tubes) // per_page))
    for number in range(pages):
        _header(page, manifest, number + 1, pages, font, tz)
        chunk = tubes[number * per_page : (number + 1) * per_page]
        width = (A4[0] - 30 * mm) / _COLUMNS
        for i, t in enumerate(chunk):
            col, row = divmod(i, _ROWS)
            x = 15 * mm + col * width
            y = A4[1] - 104 * mm - row * 4.5 * mm
            page.setFont("Courier-Bold" if t.tube in singles else "Courier", 9)
            page.drawString(x, y, f"{number * per_page + i + 1:>3}. {t.tube}  {t.residents:>2}")
            if t.tube in singles:
                page.setFont(font, 9)
                page.drawString(x + 46 * mm, y, f"{SINGLE} 单管")
        page.showPage()
    page.save()
    return buf.getvalue()


def _header(page: Canvas, m: Manifest, number: int, pages: int, font: str, tz: str) -> None:
    top = A4[1] - 15 * mm
    page.setFont(font, 18)
    page.drawString(15 * mm, top - 6 * mm, f"转运箱清单  Transfer box {m.box}")
    page.setFont(font, 9)
    page.drawRightString(
        A4[0] - 15 * mm, top - 6 * mm, f"第 {number}/{pages} 页  page {number} of {pages}"
    )
    barcode = Code128(m.box, barHeight=18 * mm, barWidth=0.5 * mm, humanReadable=True)
    barcode.drawOn(page, 15 * mm - barcode.lquiet, top - 35 * mm)
    sealed = localtime.stamp(m.sealed_at, tz)
    site = f"{m.site_name} ({m.site})" if m.site_name else m.site
    lines = [
        f"采样点 Site: {site}",
        f"轮次 Round: {m.round}    送检实验室 To lab: {m.lab or _NO_LAB}",
        f"封箱 Sealed: {sealed} ({tz})  封箱人 by {m.sealed_by}",
        f"管数 Tubes: {m.tube_count}    样本数 Samples: {m.sample_count}    "
        f"单管 Single tubes {SINGLE}: {len(m.singles)}",
        "转运员 Courier: ____________  取件时间 Picked up: ____:____  签名 Signature: __________",
        "实验室 Lab desk: ___________  接收时间 Received: ____:____  签名 Signature: __________",
    ]
    page.setFont(font, 11)
    for i, line in enumerate(lines):
        page.drawString(15 * mm, top - 46 * mm - i * 6 * mm, line)
    page.setFont(font, 9)
    page.drawString(
        15 * mm,
        A4[1] - 98 * mm,
        f"试管 tube    样本 samples     {SINGLE} = 单管（风险人员）single tube (risk)",
    )
