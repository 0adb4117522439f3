"""Decoding one image: cheap tries first, harder ones while the time budget lasts.

The raw image goes to zxing-cpp first; most photos stop there. Only
a read whose check character validates stops the search: a garbled or partial
read (valid ``False``) is kept for the answer but the search goes on, since a
later preparation may read the same label correctly. The remaining steps are
ordered by what they recover per millisecond on field-like photos (see
``sampling bench decode``) and run until the per-image budget is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, NamedTuple

from sampling import codes
from sampling.scan import engines, locate
from sampling.scan import prepare as prep
from sampling.scan.models import DecodedCode, DecodeResult

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]

DEFAULT_BUDGET_MS: Final = 70.0

Engine = Callable[["Gray"], list[engines.Read]]


class Step(NamedTuple):
    """A named way to turn the image into one or more images to decode, and the engines to use.

    Steps with the same ``shared`` name promise the same images: the first of
    them to run makes the images (all at once, not lazily) and the later ones
    reuse them, so a preparation tried with both engines costs its time once.
    """

    name: str
    images: Callable[[Gray], Iterable[Gray]]
    engines: tuple[Engine, ...]
    shared: str | None = None


def _one(f: Callable[[Gray], Gray]) -> Callable[[Gray], Iterable[Gray]]:
    return lambda img: (f(img),)


def _level_and_stretch(img: Gray) -> Iterator[Gray]:
    for crop in locate.level_crops(img):
        yield crop
        yield prep.stretch(crop, 0.08)


ZX: Final[Engine] = engines.zxing
ZB: Final[Engine] = engines.zbar


def _zx_global(img: Gray) -> list[engines.Read]:
    return engines.zxing(img, binarizer="global")


# Preparations that two steps share (one per engine); see ``Step.shared``.
_GAMMA_4 = _one(lambda g: prep.gamma(g, 4.0))
_FLATTEN = _one(lambda g: prep.flatten(g, 0.02))
_STRETCH = _one(lambda g: prep.stretch(g, 0.02))
_THRESHOLD = _one(prep.threshold)
_SHARPEN = _one(prep.sharpen)

# Cheap zxing-cpp passes on tone-corrected copies come before ZBar's slower
# scans; a preparation worth trying with both engines appears once per engine,
# where its gain per millisecond puts it. The order was measured with
# ``sampling bench decode`` and checked on photos from another seed.
STEPS: Final[tuple[Step, ...]] = (
    Step("raw", _one(lambda g: g), (ZX,)),
    Step("level", _level_and_stretch, (ZX, ZB)),
    Step("gamma", _GAMMA_4, (ZX,), "gamma 4"),
    Step("flatten", _FLATTEN, (_zx_global,), "flatten"),
    Step("raw", _one(lambda g: g), (ZB,)),
    Step("gamma", _one(lambda g: prep.gamma(g, 6.0)), (ZX,)),
    Step("threshold", _THRESHOLD, (ZB,), "threshold"),
    Step("stretch", _STRETCH, (ZB,), "stretch"),
    Step("gamma", _GAMMA_4, (ZB,), "gamma 4"),
    Step("sharpen", _SHARPEN, (ZB,), "sharpen"),
    Step("stretch", _STRETCH, (ZX,), "stretch"),
    Step("flatten", _FLATTEN, (ZX,), "flatten"),
    Step("half", _one(lambda g: prep.scale(g, 0.5)), (ZX, ZB)),
    Step("denoise", _one(prep.denoise), (ZX, ZB)),
    Step("clahe", _one(prep.clahe), (ZX,)),
    Step("highlights", _one(prep.suppress_highlights), (ZX,)),
    Step("threshold", _THRESHOLD, (ZX,), "threshold"),
    Step("sharpen", _SHARPEN, (ZX,), "sharpen"),
    Step("double", _one(lambda g: prep.scale(g, 2.0)), (ZX,)),
)


def to_codes(reads: Iterable[engines.Read]) -> tuple[DecodedCode, ...]:
    """Reads as classified codes, valid first, each text once."""
    found = [
        DecodedCode(
            text=r.text,
            format=r.format,
            kind=codes.classify(r.text),
            valid=codes.is_valid(r.text),
        )
        for r in engines.unique(list(reads))
    ]
    return tuple(sorted(found, key=lambda c: not c.valid))


def _images(step: Step, img: Gray, made: dict[str, tuple[Gray, ...]]) -> Iterable[Gray]:
    """The step's images; a shared preparation is made once and kept in ``made``."""
    if step.shared is None:
        return step.images(img)
    if step.shared not in made:
        made[step.shared] = tuple(step.images(img))
    return made[step.shared]


def _search(
    img: Gray, deadline: float, steps: tuple[Step, ...]
) -> tuple[list[engines.Read], str | None]:
    """Run ``steps`` until a valid read or the deadline; all reads and the winning step."""
    reads: list[engines.Read] = []
    # Shared images live for this call only, and are dropped after the last step
    # that uses them: a full-size copy each, and the API decodes many images.
    made: dict[str, tuple[Gray, ...]] = {}
    last_use = {s.shared: i for i, s in enumerate(steps) if s.shared is not None}
    for i, step in enumerate(steps):
        # The first step always runs in full: a zero budget still means one honest try.
        if i and time.perf_counter() >= deadline:
            break
        for image in _images(step, img, made):
            for engine in step.engines:
                got = engine(image)
                reads.extend(got)
                if any(codes.is_valid(r.text) for r in got):
                    return reads, step.name
                if i and time.perf_counter() >= deadline:
                    return reads, None
        if step.shared is not None and last_use[step.shared] == i:
            made.pop(step.shared, None)
    return reads, None


def decode(
    img: Gray, *, budget_ms: float = DEFAULT_BUDGET_MS, steps: tuple[Step, ...] = STEPS
) -> DecodeResult:
    """The codes in a grayscale image, trying preparations within ``budget_ms``.

    The first step (the raw image through zxing-cpp) always runs, whatever
    the budget, so a budget of 0 means "zxing-cpp once".
    """
    start = time.perf_counter()
    deadline = start + budget_ms / 1000
    reads, winner = _search(img, deadline, steps)
    found = to_codes(reads)
    return DecodeResult(
        codes=found,
        ms=round((time.perf_counter() - start) * 1000, 2),
        preparation=winner,
    )
