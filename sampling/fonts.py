"""A font for Chinese text in the PDFs we print (door lists, box manifests).

An embedded TrueType font renders in every viewer, so one from the system is
preferred (``./dev`` installs Debian's WenQuanYi Zen Hei); reportlab embeds the
glyphs used. Without one we fall back to the built-in CID font STSong-Light,
which Acrobat renders but viewers without Adobe's CJK data (poppler without
poppler-data) show as boxes.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
)


@cache
def cjk_font() -> str:
    """The name of a registered reportlab font that has the Chinese glyphs."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    for path in CANDIDATES:
        if path.exists():
            pdfmetrics.registerFont(TTFont("CJK", str(path), subfontIndex=0))
            return "CJK"
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"
