"""Finding tilted linear barcodes and turning them level.

Line-scanning decoders (zxing-cpp, ZBar) read a 1D barcode only along a line
that crosses every bar; on a short, wide tube label tilted by more than about
ten degrees no image row or column does. OpenCV's barcode *detector* finds the
bars' rotated box at any angle (its own decoder reads only retail codes, so
only its localisation is used); cutting that box out level lets the line
scanners read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np

from sampling.scan._cv import cv2

if TYPE_CHECKING:
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]
    Points = npt.NDArray[np.float32]

# Window sizes, as fractions of the image, over which the detector looks for
# bars of one orientation. OpenCV's default (0.01..0.08) misses most tube
# labels photographed at 1.6-3.6 px per module: their bars are short, and a
# big window straddles the label edge or a glare highlight. The small windows
# find them; the large ones are kept for labels filling the frame.
_SCALES: Final = [0.005, 0.01, 0.02, 0.03, 0.05, 0.08]
# Boxes whose bars differ by less than this many degrees and that lie on one
# line are parts of one code.
_SAME_ANGLE: Final = 10.0

_detector: cv2.barcode.BarcodeDetector | None = None


def _get_detector() -> cv2.barcode.BarcodeDetector:
    # Built lazily and once: construction loads a model and is slower than a detect call.
    global _detector
    if _detector is None:
        _detector = cv2.barcode.BarcodeDetector()
        _detector.setDetectorScales(_SCALES)
    return _detector


def _axis(pts: Points) -> tuple[tuple[float, float], float, float]:
    """Centre, angle of the long side (degrees, 0..180) and short side of the points' box."""
    (cx, cy), (w, h), angle = cv2.minAreaRect(pts)
    if w < h:
        w, h = h, w
        angle += 90
    return (cx, cy), angle % 180, h


def _collinear(a: Points, b: Points) -> bool:
    (ax, ay), aa, ah = _axis(a)
    (bx, by), ba, bh = _axis(b)
    turn = abs(aa - ba)
    if min(turn, 180 - turn) > _SAME_ANGLE:
        return False
    # The other box's centre must lie on this box's long axis, within its height.
    t = np.radians(aa)
    off = abs(-(bx - ax) * np.sin(t) + (by - ay) * np.cos(t))
    return bool(off < max(ah, bh))


def _merged(quads: list[Points]) -> list[Points]:
    """Corner sets, with the parts of one code joined.

    A glare highlight across a label often hides the middle bars, and the
    detector then reports each side as a code of its own; neither part reads,
    their union does.
    """
    groups: list[Points] = []
    for q in quads:
        for i, g in enumerate(groups):
            if _collinear(g, q):
                groups[i] = np.concatenate([g, q])
                break
        else:
            groups.append(q)
    return groups


def level_crops(img: Gray, *, max_crops: int = 3) -> list[Gray]:
    """Each detected linear barcode, rotated level and cut out with a quiet margin."""
    ok, corners = _get_detector().detect(img)
    if not ok or corners is None:
        return []
    quads = list(np.asarray(corners, dtype=np.float32).reshape(-1, 4, 2))
    crops: list[Gray] = []
    for pts in _merged(quads)[:max_crops]:
        (cx, cy), angle, _h = _axis(pts)
        _c, (w, h), _a = cv2.minAreaRect(pts)
        w, h = max(w, h), min(w, h)
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
