"""A sealed box's manifest as JSON and as the printable sheet the courier carries.

The sheet is an A4 page: the box code as a Code 128 barcode (what the courier
and the lab desk scan), the seal's who and when, the counts, and one row per
tube with its sample count, in as many columns and pages as the box needs.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

if TYPE_CHECKING:
    from sampling.boxing.models import Manifest

_ROWS = 40
_COLUMNS = 3


def as_json(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2)


def pdf(manifest: Manifest) -> bytes:
    buf = io.BytesIO()
    page = Canvas(buf, pagesize=A4, pageCompression=1)
    page.setTitle(f"Box {manifest.box} manifest")
    page.setAuthor("sampling")
    tubes = manifest.tubes or []
    per_page = _ROWS * _COLUMNS
    pages = max(1, -(-len(tubes) // per_page))
    for number in range(pages):
        _header(page, manifest, number + 1, pages)
        chunk = tubes[number * per_page : (number + 1) * per_page]
        width = (A4[0] - 30 * mm) / _COLUMNS
        for i, t in enumerate(chunk):
            col, row = divmod(i, _ROWS)
            x = 15 * mm + col * width
            y = A4[1] - 100 * mm - row * 4.5 * mm
            page.setFont("Courier", 9)
            page.drawString(x, y, f"{number * per_page + i + 1:>3}. {t.tube}  {t.residents:>2}")
        page.showPage()
    page.save()
    return buf.getvalue()


def _header(page: Canvas, m: Manifest, number: int, pages: int) -> None:
    top = A4[1] - 15 * mm
    page.setFont("Helvetica-Bold", 18)
    page.drawString(15 * mm, top - 6 * mm, f"Transfer box {m.box}")
    page.setFont("Helvetica", 9)
    page.drawRightString(A4[0] - 15 * mm, top - 6 * mm, f"page {number} of {pages}")
    barcode = Code128(m.box, barHeight=18 * mm, barWidth=0.5 * mm, humanReadable=True)
    barcode.drawOn(page, 15 * mm - barcode.lquiet, top - 35 * mm)
    sealed = datetime.fromtimestamp(m.sealed_at).strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        f"Round {m.round}    Site {m.site}    To lab {m.lab or '(named at handover)'}",
        f"Sealed {sealed} by {m.sealed_by}",
        f"Tubes {m.tube_count}    Samples {m.sample_count}",
        "Courier: ______________________   Picked up at: ____:____   Signature: ____________",
        "Lab desk: _____________________   Received at: ____:____   Signature: ____________",
    ]
    page.setFont("Helvetica", 11)
    for i, line in enumerate(lines):
        page.drawString(15 * mm, top - 48 * mm - i * 6 * mm, line)
    page.setFont("Helvetica-Bold", 9)
    page.drawString(15 * mm, A4[1] - 94 * mm, "tube              samples")
