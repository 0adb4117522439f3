"""Field-like photos of codes, made from a seed, for tests and the benchmark.

A photo is built the way a phone camera sees a label outdoors: the code is
rendered (QR by segno, Code 128 by python-barcode), put on a phone screen or a
paper label, placed on a cluttered background at a random scale, angle and
perspective, then lit. Light is added in *linear* light before the sensor's
gamma, because that is where a specular reflection adds: a reflection lifts
dark modules far more than light ones in the encoded image, and what passes the
sensor's full well is clipped to 255. Every photo then gets a little optical
blur, sensor noise and JPEG, as a phone would.

Nothing here knows about the decoding pipeline; parameters are drawn from
ranges meant to look like the field, not to be readable.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, NamedTuple

import barcode
import numpy as np
import segno

from sampling import codes
from sampling.scan._cv import cv2

if TYPE_CHECKING:
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]
    Float = npt.NDArray[np.float32]

GLARE_LEVELS: Final = ("glare_light", "glare_medium", "glare_strong")
CONDITIONS: Final = (
    "clean",
    "glare_light",
    "glare_medium",
    "glare_strong",
    "uneven_light",
    "perspective",
    "blur",
    "noise",
    "jpeg",
    "glare_medium+uneven_light",
    "glare_medium+blur",
    "glare_strong+perspective",
    "glare_light+noise+jpeg",
)


class Sample(NamedTuple):
    image: Gray
    text: str
    kind: codes.CodeKind
    condition: str


def random_code(rng: np.random.Generator) -> tuple[str, codes.CodeKind]:
    """A valid code: mostly residents (one QR per person), then tubes, a few boxes."""
    u = rng.random()
    if u < 0.3:
        body = "".join(str(d) for d in rng.integers(0, 10, 17))
        return codes.make_resident_id(body), codes.CodeKind.RESIDENT
    if u < 0.6:
        alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        body = "".join(alnum[i] for i in rng.integers(0, 36, 16))
        return codes.make_resident_token(body), codes.CodeKind.RESIDENT
    if u < 0.9:
        return codes.make_tube(int(rng.integers(0, 10**11))), codes.CodeKind.TUBE
    return codes.make_box(int(rng.integers(0, 10**9))), codes.CodeKind.BOX


def qr_modules(text: str, error: str = "m") -> npt.NDArray[np.bool_]:
    """The QR module matrix, True for dark, without quiet zone."""
    qr = segno.make_qr(text, error=error, boost_error=True)
    return np.asarray(qr.matrix, dtype=bool)


def code128_modules(text: str) -> npt.NDArray[np.bool_]:
    """The Code 128 bar pattern as one row of modules, True for a bar."""
    pattern = barcode.get_barcode_class("code128")(text, writer=None).build()[0]
    return np.asarray(np.frombuffer(pattern.encode(), dtype=np.uint8) == ord("1"), dtype=bool)


def render_qr(text: str, module_px: int = 8, quiet: int = 4, error: str = "m") -> Gray:
    """A clean QR image (black on white) with ``quiet`` modules of margin."""
    m = np.pad(qr_modules(text, error), quiet)
    return np.where(np.kron(m, np.ones((module_px, module_px), bool)), 0, 255).astype(np.uint8)


def render_code128(text: str, module_px: int = 3, height: int = 120, quiet: int = 12) -> Gray:
    """A clean Code 128 image (black bars on white) with ``quiet`` modules of margin."""
    row = np.pad(code128_modules(text), quiet)
    row = np.repeat(row, module_px)
    img = np.where(row, 0, 255).astype(np.uint8)
    return np.pad(
        np.tile(img, (height, 1)), ((module_px * 6, module_px * 6), (0, 0)), constant_values=255
    )


def render(text: str, kind: codes.CodeKind) -> Gray:
    """The clean image of a code the way it is printed for ``kind``."""
    if kind is codes.CodeKind.RESIDENT:
        return render_qr(text)
    return render_code128(text)


# --- the label: code on a phone screen or a paper label --------------------------


def _label(text: str, kind: codes.CodeKind, rng: np.random.Generator) -> tuple[Float, Float]:
    """Reflectance image of the label (0 black .. 1 white) and the code's corners in it."""
    if kind is codes.CodeKind.RESIDENT:
        m = qr_modules(text, str(rng.choice(["l", "m", "q"])))
        px = 12
        mod = np.kron(m, np.ones((px, px), bool))
        quiet = px * int(rng.integers(2, 5))
        code_img = np.pad(mod, quiet)
        # A phone screen: dark bezel around a white screen with a coloured header.
        h, w = code_img.shape
        sw, sh = w + int(rng.integers(20, 120)), h + int(rng.integers(120, 400))
        screen = np.full((sh, sw), rng.uniform(0.8, 1.0), np.float32)
        header = int(rng.integers(30, 90))
        screen[:header] = rng.uniform(0.3, 0.7)
        oy, ox = header + int(rng.integers(10, sh - h - header)), (sw - w) // 2
        ink = rng.uniform(0.0, 0.12)
        screen[oy : oy + h, ox : ox + w] = np.where(code_img, ink, screen[oy, ox])
        _scribble(screen, rng, avoid=(oy, ox, h, w))
        bezel = int(rng.integers(10, 40))
        label = np.pad(screen, bezel, constant_values=rng.uniform(0.02, 0.15))
        oy, ox = oy + bezel, ox + bezel
        x0, y0, x1, y1 = ox + quiet, oy + quiet, ox + w - quiet, oy + h - quiet
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        return label, corners
    row = np.pad(code128_modules(text), 12)
    px = 6
    bar_h = int(px * rng.uniform(10, 25))
    bars = np.tile(np.repeat(row, px), (bar_h, 1))
    h, w = bars.shape
    lh, lw = h + int(rng.integers(40, 160)), w + int(rng.integers(10, 120))
    label = np.full((lh, lw), rng.uniform(0.75, 1.0), np.float32)
    oy, ox = int(rng.integers(5, lh - h - 30)), (lw - w) // 2
    label[oy : oy + h, ox : ox + w] = np.where(bars, rng.uniform(0.0, 0.15), label[0, 0])
    # Human-readable line under the bars, as printed on tube and box labels.
    text_ink = np.zeros((lh, lw), np.uint8)
    cv2.putText(
        text_ink,
        text,
        (ox + 12 * px, min(lh - 5, oy + h + 28)),
        cv2.FONT_HERSHEY_SIMPLEX,
        1.0,
        255,
        2,
        cv2.LINE_AA,
    )
    label -= text_ink.astype(np.float32) / 255 * (label - 0.1)
    x0, x1 = ox + 12 * px, ox + w - 12 * px
    corners = np.array([[x0, oy], [x1, oy], [x1, oy + h], [x0, oy + h]], np.float32)
    return label, corners


def _scribble(img: Float, rng: np.random.Generator, avoid: tuple[int, int, int, int]) -> None:
    """Lines of 'text' on the screen outside the code, like a health-code app page."""
    oy, _ox, h, _w = avoid
    for _ in range(int(rng.integers(2, 6))):
        y = int(rng.integers(0, img.shape[0]))
        if oy - 10 <= y <= oy + h + 10:
            continue
        x0 = int(rng.integers(0, img.shape[1] // 3))
        x1 = int(rng.integers(img.shape[1] // 2, img.shape[1]))
        cv2.line(img, (x0, y), (x1, y), float(rng.uniform(0.2, 0.6)), int(rng.integers(3, 10)))


# --- the scene ---------------------------------------------------------------------


def _background(h: int, w: int, rng: np.random.Generator) -> Float:
    """Low-frequency shading plus clutter: tables, sleeves, pavement."""
    small = rng.uniform(0.1, 0.8, (int(rng.integers(2, 6)), int(rng.integers(2, 6))))
    bg = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(0, 12))):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        val = float(rng.uniform(0.0, 1.0))
        if rng.random() < 0.5:
            cv2.line(bg, p1, p2, val, int(rng.integers(1, 8)))
        else:
            cv2.rectangle(bg, p1, p2, val, -1 if rng.random() < 0.5 else 2)
    texture = cv2.GaussianBlur(rng.normal(0, 0.05, (h, w)).astype(np.float32), (0, 0), 1.5)
    return np.asarray(np.clip(bg + texture, 0, 1), dtype=np.float32)


def _placement(
    label_shape: tuple[int, int],
    code_corners: Float,
    size: tuple[int, int],
    kind: codes.CodeKind,
    perspective: float,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Homography from label to photo: random scale, angle, position and tilt."""
    lh, lw = label_shape
    h, w = size
    code_w = float(np.linalg.norm(code_corners[1] - code_corners[0]))
    if kind is codes.CodeKind.RESIDENT:
        modules = code_w / 12
        target = modules * rng.uniform(3.0, 9.0)  # pixels per module in the photo
        angle = rng.uniform(0, 360)
    else:
        modules = code_w / 6
        target = modules * rng.uniform(1.6, 3.6)
        angle = rng.uniform(-25, 25) + (90 if rng.random() < 0.2 else 0)
    scale = target / code_w
    # Keep the whole label on the photo as far as the scale allows.
    scale = min(scale, 0.95 * min(h, w) / max(lh, lw) * 1.4)
    src = np.array([[0, 0], [lw, 0], [lw, lh], [0, lh]], np.float32)
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rot = np.array([[c, -s], [s, c]])
    centred = (src - np.array([lw / 2, lh / 2], np.float32)) * scale
    dst = centred @ rot.T
    jitter = rng.uniform(-perspective, perspective, dst.shape) * scale * max(lw, lh)
    dst = dst + jitter
    # Centre the *code* roughly in frame, as a sampler aims at it.
    code_c = (code_corners.mean(axis=0) - np.array([lw / 2, lh / 2], np.float32)) * scale @ rot.T
    centre = np.array([w / 2, h / 2]) + rng.uniform(-0.12, 0.12, 2) * np.array([w, h])
    dst = dst - code_c + centre
    return np.asarray(cv2.getPerspectiveTransform(src, dst.astype(np.float32)), dtype=np.float64)


def _glare(
    h: int, w: int, code_quad: Float, surface: Float, level: str, rng: np.random.Generator
) -> Float:
    """Specular light in linear units (1.0 reaches sensor saturation on white).

    Blobs (a lamp or the sun mirrored in a screen) and streaks (a window or sky
    edge on a glossy label), with flat saturated cores and soft halos, placed
    over or near the code at random; often also a veil, the sky mirrored over
    the whole glossy surface, which lifts every dark module at once.
    Computed at half resolution: specular light is smooth at that scale.
    """
    hh, hw = (h + 1) // 2, (w + 1) // 2
    glare = np.zeros((hh, hw), np.float32)
    quad = code_quad / 2
    side = float(np.linalg.norm(quad[1] - quad[0]))
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    n, size, peak, veil = {
        "glare_light": (int(rng.integers(1, 3)), (0.15, 0.45), (0.15, 0.6), (0.03, 0.2)),
        "glare_medium": (int(rng.integers(1, 3)), (0.2, 0.55), (0.5, 1.3), (0.1, 0.45)),
        "glare_strong": (int(rng.integers(1, 4)), (0.3, 0.8), (0.9, 2.5), (0.25, 0.8)),
    }[level]
    yy, xx = np.mgrid[0:hh, 0:hw].astype(np.float32)
    for _ in range(n):
        cx, cy = rng.uniform(lo - 0.1 * side, hi + 0.1 * side)
        a = side * rng.uniform(*size) / 2
        b = a * (rng.uniform(0.08, 0.3) if rng.random() < 0.35 else rng.uniform(0.5, 1.0))
        if rng.random() < 0.35:  # a streak: long and thin, across the code
            a *= rng.uniform(1.5, 3.0)
        theta = rng.uniform(0, math.pi)
        ct, st = math.cos(theta), math.sin(theta)
        u = ((xx - cx) * ct + (yy - cy) * st) / a
        v = (-(xx - cx) * st + (yy - cy) * ct) / b
        r2 = u * u + v * v
        sharp = rng.uniform(1.0, 3.0)  # 1: Gaussian; larger: flat core, steep edge
        glare += float(rng.uniform(*peak)) * np.exp(-(r2**sharp)).astype(np.float32)
    if rng.random() < 0.6:
        gx, gy = rng.uniform(-1, 1, 2)
        ramp = 1.0 + ((xx / hw - 0.5) * gx + (yy / hh - 0.5) * gy)
        glare += float(rng.uniform(*veil)) * np.clip(ramp, 0.2, 1.8)
    full = cv2.resize(glare, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(full * surface, dtype=np.float32)


def _uneven(h: int, w: int, rng: np.random.Generator) -> Float:
    """Multiplicative light: a gradient, a vignette and sometimes a hard shadow."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(-1, 1, 2)
    grad = (xx / w - 0.5) * gx + (yy / h - 0.5) * gy
    light = 1.0 + grad * rng.uniform(0.6, 1.4)
    r2 = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
    light *= 1.0 - rng.uniform(0.3, 0.9) * r2
    if rng.random() < 0.6:
        pts = rng.uniform(0, 1, (int(rng.integers(3, 6)), 2)) * np.array([w, h])
        mask = np.zeros((h, w), np.float32)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1.0)
        mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(2, 15))
        light *= 1.0 - mask * rng.uniform(0.4, 0.8)
    return np.asarray(np.clip(light, 0.08, 1.5), dtype=np.float32)


def _motion_kernel(length: int, angle: float) -> Float:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return np.asarray(k / max(float(k.sum()), 1e-6), dtype=np.float32)


def _disk_kernel(radius: float) -> Float:
    n = math.ceil(radius) * 2 + 1
    yy, xx = np.mgrid[0:n, 0:n] - n // 2
    k = (xx * xx + yy * yy <= radius * radius).astype(np.float32)
    return np.asarray(k / float(k.sum()), dtype=np.float32)


class _Scene(NamedTuple):
    reflectance: Float  # 0..1, label over background
    surface: Float  # 1 on the glossy label, 0 elsewhere
    quad: Float  # the code's corners in the photo


def _scene(text: str, kind: codes.CodeKind, parts: set[str], rng: np.random.Generator) -> _Scene:
    w = int(rng.integers(640, 1281)) // 8 * 8
    h = w * 3 // 4
    label, corners = _label(text, kind, rng)
    tilt = rng.uniform(0.06, 0.14) if "perspective" in parts else rng.uniform(0.0, 0.03)
    hom = _placement(label.shape[:2], corners, (h, w), kind, tilt, rng)
    bg = _background(h, w, rng)
    warped = cv2.warpPerspective(label, hom, (w, h), flags=cv2.INTER_AREA, borderValue=-1.0)
    scene = np.where(warped >= 0, warped, bg).astype(np.float32)
    quad = cv2.perspectiveTransform(corners[None], hom)[0]
    return _Scene(scene, (warped >= 0).astype(np.float32), quad)


def _expose(scene: _Scene, parts: set[str], rng: np.random.Generator) -> Gray:
    """Light, optics, sensor and JPEG: what the phone makes of the scene."""
    h, w = scene.reflectance.shape
    # Linear light = reflectance x illumination (+ specular), then exposure.
    light = _uneven(h, w, rng) if "uneven_light" in parts else np.float32(rng.uniform(0.75, 1.0))
    linear = np.power(scene.reflectance, 2.2) * light
    level = next((p for p in sorted(parts) if p in GLARE_LEVELS), None)
    if level is not None:
        linear = linear + _glare(h, w, scene.quad, scene.surface, level, rng)
        # Metering sees the highlight and shortens the exposure a little.
        linear *= rng.uniform(0.6, 1.0)
    img = np.power(np.clip(linear, 0, 1), 1 / 2.2) * 255

    if "blur" in parts:
        if rng.random() < 0.5:
            k = _motion_kernel(int(rng.integers(5, 14)), rng.uniform(0, 180))
        else:
            k = _disk_kernel(rng.uniform(1.5, 3.5))
        img = cv2.filter2D(img, -1, k)
    else:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.0))
    sigma = rng.uniform(8, 20) if "noise" in parts else rng.uniform(1, 4)
    img = img + rng.normal(0, sigma, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(rng.integers(8, 25)) if "jpeg" in parts else int(rng.integers(70, 95))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded: Gray = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return decoded


def photo(text: str, kind: codes.CodeKind, condition: str, rng: np.random.Generator) -> Gray:
    """A grayscale field photo of ``text`` under ``condition`` (``+``-joined parts)."""
    parts = set(condition.split("+"))
    return _expose(_scene(text, kind, parts, rng), parts, rng)


def _shake(scene: _Scene, rng: np.random.Generator) -> _Scene:
    """The scene as a hand-held phone sees it a moment later: a small shift, turn and zoom."""
    h, w = scene.reflectance.shape
    rot = cv2.getRotationMatrix2D(
        (w / 2, h / 2), float(rng.uniform(-4, 4)), float(rng.uniform(0.96, 1.04))
    )
    rot[:, 2] += rng.uniform(-0.03, 0.03, 2) * np.array([w, h])
    warp = {"dsize": (w, h), "flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_REFLECT}
    return _Scene(
        cv2.warpAffine(scene.reflectance, rot, **warp),
        cv2.warpAffine(scene.surface, rot, **warp),
        cv2.transform(scene.quad[None], rot)[0].astype(np.float32),
    )


def frames(
    text: str, kind: codes.CodeKind, condition: str, n: int, rng: np.random.Generator
) -> list[Gray]:
    """``n`` photos of one label taken in a row: the hand moves a little, the glare moves more."""
    parts = set(condition.split("+"))
    scene = _scene(text, kind, parts, rng)
    return [_expose(_shake(scene, rng), parts, rng) for _ in range(n)]


def sample(rng: np.random.Generator, condition: str) -> Sample:
    text, kind = random_code(rng)
    return Sample(photo(text, kind, condition, rng), text, kind, condition)
