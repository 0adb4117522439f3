"""The two open-source decoders, behind one small interface.

Each engine takes a grayscale ``uint8`` image and returns :class:`Read` tuples
with format names shared by both engines (``QRCode``, ``Code128``...), so the
pipeline can compare and merge their answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

import zxingcpp
from pyzbar import pyzbar

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]

# Only the symbologies printed in the field: fewer formats is faster and leaves
# fewer chances for a false read from background texture.
_ZX_FORMATS: Final = zxingcpp.BarcodeFormats(
    [
        zxingcpp.BarcodeFormat.QRCode,
        zxingcpp.BarcodeFormat.Code128,
        zxingcpp.BarcodeFormat.DataMatrix,
    ]
)
_ZBAR_SYMBOLS: Final = (
    pyzbar.ZBarSymbol.QRCODE,
    pyzbar.ZBarSymbol.CODE128,
)
_ZBAR_NAMES: Final = {"QRCODE": "QRCode", "CODE128": "Code128"}

BINARIZERS: Final = {
    "local": zxingcpp.Binarizer.LocalAverage,
    "global": zxingcpp.Binarizer.GlobalHistogram,
    "fixed": zxingcpp.Binarizer.FixedThreshold,
}


class Read(NamedTuple):
    text: str
    format: str


def zxing(
    image: Gray,
    *,
    binarizer: str = "local",
    try_rotate: bool = True,
    try_downscale: bool = True,
    try_invert: bool = True,
) -> list[Read]:
    """zxing-cpp on ``image``; its defaults are the best single call it offers."""
    found = zxingcpp.read_barcodes(
        image,
        formats=_ZX_FORMATS,
        try_rotate=try_rotate,
        try_downscale=try_downscale,
        try_invert=try_invert,
        binarizer=BINARIZERS[binarizer],
    )
    return [Read(b.text, b.format.name) for b in found if b.valid and b.text]


def zbar(image: Gray) -> list[Read]:
    """ZBar (pyzbar) on ``image``; it scans every line, so it catches some barcodes zxing drops."""
    found = pyzbar.decode(image, symbols=_ZBAR_SYMBOLS)
    reads: list[Read] = []
    for s in found:
        try:
            text = s.data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text:
            reads.append(Read(text, _ZBAR_NAMES.get(s.type, s.type)))
    return reads


def unique(reads: Sequence[Read]) -> list[Read]:
    """``reads`` without repeats, first occurrence kept."""
    seen: set[str] = set()
    out: list[Read] = []
    for r in reads:
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out
