"""Image preparations that make a hard photo readable, each ``Gray -> Gray``.

Glare is the field's main failure. A specular reflection *adds* light: inside
a highlight's halo the dark modules are lifted to light grey while the light
ones clip at white, so the code is still there but with a few grey levels of
contrast on a bright, sloping background. The decoders' binarizers treat such
low-contrast blocks as blank. The preparations here divide out the background,
stretch what is left locally, or bend the tone curve so those few levels
become black and white again. Only where the sensor saturated is the code
really gone; multi-frame combination (``frames.py``) is for that.

Heavy neighbourhood operations run on a reduced copy: the background and the
local black level vary slowly compared with a module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sampling.scan._cv import cv2

if TYPE_CHECKING:
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]
    Floats = npt.NDArray[np.floating[Any]]


def _reduced(img: Gray, target: int = 320) -> tuple[Gray, float]:
    """``img`` shrunk so its longer side is about ``target`` pixels, and the factor."""
    f = min(1.0, target / max(img.shape))
    if f == 1.0:
        return img, 1.0
    small: Gray = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    return small, f


def _expand(small: Floats, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = cv2.resize(
        small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR
    )
    return out


def _envelopes(
    img: Gray, module_frac: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Local white (closing) and black (opening) levels, smooth, at reduced size.

    The kernel must be wider than a module so closing fills dark modules with
    the surrounding white and opening fills light ones with black.
    """
    small, _f = _reduced(img)
    k = max(3, round(max(small.shape) * module_frac) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    hi = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel).astype(np.float32)
    lo = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel).astype(np.float32)
    sigma = k / 2
    hi = cv2.GaussianBlur(hi, (0, 0), sigma)
    lo = cv2.GaussianBlur(lo, (0, 0), sigma)
    return hi, lo


def _affine(img: Gray, gain: Floats, offset: Floats | None = None) -> Gray:
    """``img * gain + offset`` with both maps given at reduced size, saturated to uint8.

    The maps are smooth, so they are built small and only enlarged; the two
    full-size passes are OpenCV's, which round and saturate on the way to uint8.
    """
    scaled = cv2.multiply(img, _expand(gain, img.shape), dtype=cv2.CV_32F)
    if offset is None:
        out: Gray = cv2.convertScaleAbs(scaled)  # values are >= 0 here
        return out
    out = cv2.add(scaled, _expand(offset, img.shape), dtype=cv2.CV_8U)
    return out


def flatten(img: Gray, module_frac: float = 0.04) -> Gray:
    """Divide by the local white level: shadows, vignettes and glare halos become flat."""
    hi, _ = _envelopes(img, module_frac)
    return _affine(img, 235.0 / np.maximum(hi, 8.0))


def stretch(img: Gray, module_frac: float = 0.04, floor: float = 6.0) -> Gray:
    """Map the local black..white range to 0..255, so a veiled code regains full contrast.

    ``floor`` keeps blank areas (where black and white levels meet) from turning
    into amplified noise.
    """
    hi, lo = _envelopes(img, module_frac)
    gain = 255.0 / np.maximum(hi - lo, floor)
    return _affine(img, gain, -lo * gain)


def clahe(img: Gray, clip: float = 3.0, tiles: int = 8) -> Gray:
    """Contrast-limited adaptive histogram equalisation."""
    out: Gray = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(img)
    return out


def gamma(img: Gray, g: float) -> Gray:
    """Tone curve ``(x/255)**g``: ``g > 1`` spreads the bright end, where glare puts the code."""
    lut = (np.linspace(0, 1, 256) ** g * 255).round().astype(np.uint8)
    out: Gray = cv2.LUT(img, lut)
    return out


def sharpen(img: Gray, sigma: float = 1.5, amount: float = 1.5) -> Gray:
    """Unsharp mask, against defocus and slight motion blur."""
    blur = cv2.GaussianBlur(img, (0, 0), sigma)
    out: Gray = cv2.addWeighted(img, 1 + amount, blur, -amount, 0)
    return out


def denoise(img: Gray) -> Gray:
    """Median 3x3: removes sensor speckle and JPEG ringing without smearing edges much."""
    out: Gray = cv2.medianBlur(img, 3)
    return out


def scale(img: Gray, f: float) -> Gray:
    """Resize by ``f``: up for codes with modules under ~2 px, down for large noisy photos."""
    interp = cv2.INTER_CUBIC if f > 1 else cv2.INTER_AREA
    out: Gray = cv2.resize(img, None, fx=f, fy=f, interpolation=interp)
    return out


def threshold(img: Gray, block_frac: float = 0.03) -> Gray:
    """Adaptive mean threshold to pure black and white, block a little wider than a module."""
    block = max(3, int(max(img.shape) * block_frac) | 1)
    out: Gray = cv2.adaptiveThreshold(
        img, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, 2
    )
    return out


def suppress_highlights(img: Gray, level: int = 245) -> Gray:
    """Fill saturated pixels from their surroundings (inpainting) at reduced size.

    Where the sensor clipped, the pixel carries nothing; filling it with the
    neighbouring grey rather than white stops the binarizer from reading a
    glare core as a run of light modules with a hard edge around it.
    """
    mask = (img >= level).astype(np.uint8)
    if not mask.any():
        return img
    small, _f = _reduced(img, 640)
    small_mask = cv2.resize(mask, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    small_mask = cv2.dilate(small_mask, np.ones((3, 3), np.uint8))
    filled = cv2.inpaint(small, small_mask, 3, cv2.INPAINT_TELEA)
    big = cv2.resize(filled, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
    out: Gray = np.where(mask.astype(bool), big, img)
    return out
