"""The sealer's desk, ``/ui/box``: open a box, scan tubes in, count, seal, print, hand over.

Every step is the boxing API's (``sampling.boxing.routes``) called by the page's
script as the signed-in sealer; an open tube or a count that disagrees comes back
as the API's refusal and fills the page in red. The sealed box's code is shown as
a Code 128 barcode (``/ui/barcode/{code}.svg``) for the courier to scan.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath

from sampling import codes
from sampling.errors import BadInput
from sampling.web import i18n
from sampling.web.layer import Link, link, roles
from sampling.web.pages.chain import page

i18n.register(
    {
        "nav.box": {"zh": "封箱", "en": "Seal boxes"},
        "sealer.title": {"zh": "封箱台", "en": "Sealing desk"},
        "sealer.code": {"zh": "扫描箱码", "en": "Scan the box code"},
        "sealer.lab": {"zh": "送检实验室", "en": "Lab"},
        "sealer.open": {"zh": "开箱", "en": "Open box"},
        "sealer.resume": {"zh": "继续此箱", "en": "Continue this box"},
        "sealer.current": {"zh": "当前箱", "en": "Current box"},
        "sealer.tube": {"zh": "扫描试管（扫完一支按回车）", "en": "Scan a tube (Enter after each)"},
        "sealer.add": {"zh": "装入", "en": "Add"},
        "sealer.tubes": {"zh": "管数", "en": "Tubes"},
        "sealer.samples": {"zh": "样本数", "en": "Samples"},
        "sealer.count_title": {"zh": "清点箱内实物后填写", "en": "Count what is in the box"},
        "sealer.counted_tubes": {"zh": "清点管数", "en": "Tubes counted"},
        "sealer.counted_samples": {"zh": "清点样本数", "en": "Samples counted"},
        "sealer.seal": {"zh": "封箱", "en": "Seal"},
        "sealer.sealed": {"zh": "已封箱：{box}", "en": "Sealed: {box}"},
        "sealer.added": {"zh": "已装入 {tube}（{n} 人）", "en": "Added {tube} ({n} residents)"},
        "sealer.opened": {"zh": "已开箱 {box}", "en": "Opened {box}"},
        "sealer.manifest": {"zh": "打印装箱清单", "en": "Print the manifest"},
        "sealer.handover": {"zh": "交接给转运员", "en": "Hand over to a courier"},
        "sealer.courier": {"zh": "转运员编号", "en": "Courier id"},
        "sealer.hand": {"zh": "交接", "en": "Hand over"},
        "sealer.handed": {
            "zh": "已交接给 {courier}，请转运员扫描下方箱码",
            "en": "Handed to {courier}: the courier scans the code below",
        },
        "sealer.show_code": {"zh": "转运员扫描此码", "en": "Courier: scan this code"},
        "col.tube": {"zh": "试管", "en": "Tube"},
        "col.box": {"zh": "箱码", "en": "Box"},
        "col.refs": {"zh": "居民（哈希前缀）", "en": "Residents (hash prefix)"},
        "col.where": {"zh": "去向", "en": "Where"},
        "col.residents": {"zh": "人数", "en": "Residents"},
        "col.boxed_at": {"zh": "装箱时间", "en": "Boxed at"},
        "col.state": {"zh": "状态", "en": "State"},
        "state.open": {"zh": "开箱中", "en": "open"},
        "state.sealed": {"zh": "已封箱", "en": "sealed"},
        "state.handed_over": {"zh": "已交接", "en": "handed over"},
        "state.picked_up": {"zh": "转运中", "en": "picked up"},
        "state.received": {"zh": "已送达", "en": "received"},
        "state.intake_closed": {"zh": "已完成接收", "en": "intake closed"},
        "state.boxed": {"zh": "已装箱", "en": "boxed"},
    }
)
link(Link("nav.box", "/ui/box", ("sealer",), order=20))


@get("/ui/box", include_in_schema=False, opt=roles("sealer"))
async def box_desk(request: Request[Any, Any, Any]) -> Any:
    return await page(
        request, "box.html", "sealer.", "state.", box=request.query_params.get("box", "")
    )


@get(
    "/ui/barcode/{code:str}",
    include_in_schema=False,
    opt=roles("sealer", "courier", "lab", "admin", "viewer"),
)
async def barcode(code: FromPath[str]) -> Response[bytes]:
    """A box code as a Code 128 barcode (SVG), the same symbology as the manifest."""
    from reportlab.graphics import renderSVG
    from reportlab.graphics.barcode import createBarcodeDrawing

    text = codes.normalize(code.removesuffix(".svg"))
    if codes.classify(text) is not codes.CodeKind.BOX:
        raise BadInput(f"{text[:24]} is not a box code")
    drawing = createBarcodeDrawing(
        "Code128", value=text, barHeight=60, barWidth=2, humanReadable=True
    )
    svg = renderSVG.drawToString(drawing)
    # Without the XML prolog: its DTD names a host outside the district network.
    body = svg[svg.index("<svg") :].encode()
    return Response(body, media_type="image/svg+xml")


ROUTES = [box_desk, barcode]
