"""Reading one label from several frames when no single frame is readable.

A specular highlight sits where the light source mirrors in the surface, so
it moves across the label when the phone moves, while the code stays printed
where it is. After aligning the frames on the code, the per-pixel *minimum*
keeps, for every module, the frame where it was not washed out: glare only
ever adds light. With three or more frames the per-pixel median is tried too,
which also drops a dark speck found in one frame only.

Frames are aligned to the first by ORB features and a RANSAC homography,
found on reduced copies (features are plentiful at that scale and it is
fast); glare makes spurious features, RANSAC discards them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

import numpy as np

from sampling.scan import pipeline
from sampling.scan._cv import cv2
from sampling.scan.errors import NoImage, TooManyFrames
from sampling.scan.models import DecodedCode, DecodeResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]

MAX_FRAMES: Final = 5
_ALIGN_SIDE: Final = 640
_MIN_INLIERS: Final = 12


def _homography(ref_small: Gray, img_small: Gray) -> npt.NDArray[np.float64] | None:
    """Homography taking ``img_small`` onto ``ref_small``, or None when they do not match."""
    orb = cv2.ORB_create(nfeatures=1500)
    k1, d1 = orb.detectAndCompute(ref_small, None)
    k2, d2 = orb.detectAndCompute(img_small, None)
    if d1 is None or d2 is None or len(k1) < _MIN_INLIERS or len(k2) < _MIN_INLIERS:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d2, d1)
    if len(matches) < _MIN_INLIERS:
        return None
    src = np.array([k2[m.queryIdx].pt for m in matches], np.float32)
    dst = np.array([k1[m.trainIdx].pt for m in matches], np.float32)
    hom, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if hom is None or inliers is None or int(inliers.sum()) < _MIN_INLIERS:
        return None
    return np.asarray(hom, dtype=np.float64)


def align(frames: Sequence[Gray]) -> tuple[list[Gray], list[int]]:
    """The frames that could be aligned to frame 0, warped onto it, and their indices."""
    ref = frames[0]
    h, w = ref.shape
    f = min(1.0, _ALIGN_SIDE / max(h, w))
    to_small = np.diag([f, f, 1.0])
    from_small = np.diag([1 / f, 1 / f, 1.0])
    ref_small = cv2.resize(ref, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    aligned, used = [ref], [0]
    for i, img in enumerate(frames[1:], start=1):
        small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        hom = _homography(ref_small, small)
        if hom is None:
            continue
        full = from_small @ hom @ to_small
        aligned.append(
            cv2.warpPerspective(
                img, full, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
        )
        used.append(i)
    return aligned, used


def combine(frames: Sequence[Gray]) -> dict[str, Gray]:
    """Glare-free estimates of the label from aligned frames, by name."""
    stack = np.stack(frames)
    out: dict[str, Gray] = {"minimum": stack.min(axis=0)}
    if len(frames) >= 3:
        out["median"] = np.median(stack, axis=0).astype(np.uint8)
    return out


def decode_frames(
    frames: Sequence[Gray], *, budget_ms: float = pipeline.DEFAULT_BUDGET_MS
) -> DecodeResult:
    """The codes on one label shot in 1 to :data:`MAX_FRAMES` frames.

    Each frame is tried alone first (cheaply: the engines on the raw frame);
    then the aligned combination gets the full pipeline; last, each frame
    gets the full pipeline. ``frames_used`` says which frames gave the read.
    """
    if not frames:
        raise NoImage("Send at least one frame.")
    if len(frames) > MAX_FRAMES:
        raise TooManyFrames(
            f"{len(frames)} frames sent; at most {MAX_FRAMES} are combined.",
            frames=len(frames),
            max_frames=MAX_FRAMES,
        )
    start = time.perf_counter()
    seen: list[DecodedCode] = []

    def done(result: DecodeResult, used: Sequence[int]) -> DecodeResult:
        return DecodeResult(
            codes=result.codes,
            ms=round((time.perf_counter() - start) * 1000, 2),
            frames_used=tuple(used),
            preparation=result.preparation,
        )

    quick = pipeline.STEPS[:1]
    for i, frame in enumerate(frames):
        r = pipeline.decode(frame, budget_ms=0, steps=quick)
        seen.extend(r.codes)
        if any(c.valid for c in r.codes):
            return done(r, [i])
    if len(frames) > 1:
        aligned, used = align(frames)
        if len(aligned) > 1:
            for name, img in combine(aligned).items():
                r = pipeline.decode(img, budget_ms=budget_ms)
                seen.extend(r.codes)
                if any(c.valid for c in r.codes):
                    return done(
                        DecodeResult(codes=r.codes, ms=r.ms, preparation=f"{name}:{r.preparation}"),
                        used,
                    )
    for i, frame in enumerate(frames):
        r = pipeline.decode(frame, budget_ms=budget_ms)
        seen.extend(r.codes)
        if any(c.valid for c in r.codes):
            return done(r, [i])
    unique = {c.text: c for c in seen}
    return done(DecodeResult(codes=tuple(unique.values()), ms=0.0), [])
