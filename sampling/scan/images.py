"""Turning uploaded bytes into a grayscale array, safely.

The header is read first (Pillow reads only the header on open) so a small
file claiming a huge size is refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Final

import numpy as np
from PIL import Image, UnidentifiedImageError

from sampling.scan._cv import cv2
from sampling.scan.errors import ImageTooLarge, NotAnImage

if TYPE_CHECKING:
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]

MAX_BYTES: Final = 8 * 1024 * 1024
MAX_PIXELS: Final = 40_000_000


def _header_size(data: bytes) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            # We enforce our own, lower limit below; Pillow's bomb warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge("The image has too many pixels.") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage("The file is not an image this service can read.") from exc


def load(
    data: bytes, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS, name: str = "image"
) -> Gray:
    """The grayscale pixels of an encoded image (JPEG, PNG, WebP, BMP, TIFF...).

    Raises :class:`ImageTooLarge` for more than ``max_bytes`` bytes or
    ``max_pixels`` pixels, :class:`NotAnImage` for anything that does not decode.
    """
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"{name} is {len(data)} bytes; the limit is {max_bytes}.",
            bytes=len(data),
            max_bytes=max_bytes,
        )
    width, height = _header_size(data)
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{name} is {width}x{height} pixels; the limit is {max_pixels} pixels.",
            width=width,
            height=height,
            max_pixels=max_pixels,
        )
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        # Pillow knows some formats OpenCV lacks (GIF, some TIFFs); let it decode those.
        img = _pillow_gray(data)
    out: Gray = np.ascontiguousarray(img, dtype=np.uint8)
    return out


def _pillow_gray(data: bytes) -> Gray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage("The file is not an image this service can read.") from exc
