"""Several frames of one label: glare moves between frames, the code does not."""

from __future__ import annotations

import numpy as np
import pytest

from sampling import codes
from sampling.codes import CodeKind
from sampling.scan import frames, pipeline, synth
from sampling.scan.errors import NoImage, TooManyFrames

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _glared_frames(kind: CodeKind, seed: int) -> tuple[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    if kind is CodeKind.RESIDENT:
        text = codes.make_resident_token("".join(_ALNUM[i] for i in rng.integers(0, 36, 16)))
    else:
        text = codes.make_tube(int(rng.integers(0, 10**11)))
    return text, synth.frames(text, kind, "glare_strong", 3, rng)


def _reads(text: str, result: object) -> bool:
    return any(c.text == text and c.valid for c in result.codes)  # type: ignore[attr-defined]


# Seeds whose frames the single-image pipeline cannot read one by one (tube seed 8
# became readable alone when the pipeline learned to find short tilted labels; tube
# seed 44's combination stopped reading on a machine with today's libraries, OpenCV
# 4.14 or 5.1 alike, while seeds 9, 18, 22, 23, 25, 32 and 47 among others keep the
# property there).
@pytest.mark.parametrize(("kind", "seed"), [(CodeKind.RESIDENT, 2), (CodeKind.TUBE, 9)])
def test_frames_none_readable_alone_are_read_together(kind: CodeKind, seed: int) -> None:
    text, shots = _glared_frames(kind, seed)
    # Every frame alone defeats the whole pipeline, even with a generous budget...
    for shot in shots:
        assert not _reads(text, pipeline.decode(shot, budget_ms=2000))
    # ...but the aligned combination is read (given the same budget: on a busy
    # machine the default one ran out first), and says which frames it used.
    result = frames.decode_frames(shots, budget_ms=2000)
    assert _reads(text, result)
    assert len(result.frames_used) >= 2
    assert set(result.frames_used) <= {0, 1, 2}
    assert result.preparation is not None
    assert result.preparation.split(":")[0] in ("minimum", "median")


def test_a_readable_frame_is_used_alone() -> None:
    text = codes.make_box(123456789)
    clean = synth.photo(text, CodeKind.BOX, "clean", np.random.default_rng(1))
    blank = np.full_like(clean, 128)
    result = frames.decode_frames([blank, clean])
    assert _reads(text, result)
    assert result.frames_used == (1,)


def test_frame_count_is_bounded() -> None:
    blank = np.full((100, 100), 128, np.uint8)
    with pytest.raises(NoImage):
        frames.decode_frames([])
    with pytest.raises(TooManyFrames) as info:
        frames.decode_frames([blank] * (frames.MAX_FRAMES + 1))
    assert info.value.status == 413


def test_unreadable_frames_give_no_codes() -> None:
    rng = np.random.default_rng(4)
    noise = [rng.integers(0, 256, (240, 320), dtype=np.uint8) for _ in range(3)]
    result = frames.decode_frames(noise, budget_ms=50)
    assert result.codes == ()
    assert result.frames_used == ()
