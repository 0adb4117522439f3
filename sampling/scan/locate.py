"""Finding tilted linear barcodes and turning them level.

Line-scanning decoders (zxing-cpp, ZBar) read a 1D barcode only along a line
that crosses every bar; on a short, wide tube label tilted by more than about
ten degrees no image row or column does. OpenCV's barcode *detector* finds the
bars' rotated box at any angle (its own decoder reads only retail codes, so
only its localisation is used); cutting that box out level lets the line
scanners read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sampling.scan._cv import cv2

if TYPE_CHECKING:
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]

_detector: cv2.barcode.BarcodeDetector | None = None


def _get_detector() -> cv2.barcode.BarcodeDetector:
    # Built lazily and once: construction loads a model and is slower than a detect call.
    global _detector
    if _detector is None:
        _detector = cv2.barcode.BarcodeDetector()
    return _detector


def level_crops(img: Gray, *, max_crops: int = 3) -> list[Gray]:
    """Each detected linear barcode, rotated level and cut out with a quiet margin."""
    ok, corners = _get_detector().detect(img)
    if not ok or corners is None:
        return []
    crops: list[Gray] = []
    for quad in np.asarray(corners, dtype=np.float32).reshape(-1, 4, 2)[:max_crops]:
        (cx, cy), (w, h), angle = cv2.minAreaRect(quad)
        if w < h:  # make the long side (across the bars) horizontal
            w, h = h, w
            angle += 90
        # Widen the box: the detector's box often stops short of the outer bars,
        # and the decoders need the quiet zone.
        w, h = w * 1.2 + 20, h * 1.3 + 16
        rot = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        rot[:, 2] += (w / 2 - cx, h / 2 - cy)
        crop: Gray = cv2.warpAffine(
            img, rot, (int(w), int(h)), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        if crop.size:
            crops.append(crop)
    return crops
