"""Pipeline steps: a preparation shared by steps is made once per decode, with the same result."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from sampling import codes
from sampling.codes import CodeKind
from sampling.scan import engines, pipeline, synth
from sampling.scan.pipeline import Step

TUBE = codes.make_tube(12345678901)


class _Counted:
    """A preparation that counts its calls and returns a fresh copy each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, img: np.ndarray) -> tuple[np.ndarray]:
        self.calls += 1
        return (img + 1,)


class _Seen:
    """An engine that remembers which image objects it was given, and reads nothing."""

    def __init__(self, reads: list[engines.Read] | None = None) -> None:
        self.images: list[np.ndarray] = []
        self.reads = reads or []

    def __call__(self, img: np.ndarray) -> list[engines.Read]:
        self.images.append(img)
        return self.reads


def test_a_shared_preparation_is_made_once_per_decode() -> None:
    shared, other = _Counted(), _Counted()
    first, second, third = _Seen(), _Seen(), _Seen()
    steps = (
        Step("raw", lambda g: (g,), (first,)),
        Step("a", shared, (first,), "p"),
        Step("b", other, (second,)),
        Step("a again", shared, (second, third), "p"),
    )
    img = np.zeros((8, 8), np.uint8)
    result = pipeline.decode(img, budget_ms=100_000, steps=steps)
    assert result.preparation is None
    assert shared.calls == 1
    assert other.calls == 1
    # Both steps were given the one image the preparation made.
    assert first.images[1] is second.images[1] is third.images[0]
    # Another decode makes it again: nothing is kept between calls.
    pipeline.decode(img, budget_ms=100_000, steps=steps)
    assert shared.calls == 2


def test_steps_without_a_shared_name_prepare_each_time() -> None:
    prep = _Counted()
    steps = (Step("raw", lambda g: (g,), (_Seen(),)),) + (Step("x", prep, (_Seen(),)),) * 2
    pipeline.decode(np.zeros((8, 8), np.uint8), budget_ms=100_000, steps=steps)
    assert prep.calls == 2


def test_the_winning_step_is_the_one_whose_engine_read() -> None:
    shared = _Counted()
    steps = (
        Step("raw", lambda g: (g,), (_Seen(),)),
        Step("first", shared, (_Seen(),), "p"),
        Step("second", shared, (_Seen([engines.Read(TUBE, "Code128")]),), "p"),
    )
    result = pipeline.decode(np.zeros((8, 8), np.uint8), budget_ms=100_000, steps=steps)
    assert result.preparation == "second"
    assert [c.text for c in result.codes] == [TUBE]
    assert shared.calls == 1


def test_steps_that_share_a_name_make_the_same_images() -> None:
    # The name is a promise the memo relies on; check it for the real steps.
    img = synth.photo(TUBE, CodeKind.TUBE, "glare_medium", np.random.default_rng(3))
    by_name: defaultdict[str, list[list[np.ndarray]]] = defaultdict(list)
    for step in pipeline.STEPS:
        if step.shared is not None:
            by_name[step.shared].append(list(step.images(img)))
    assert by_name
    for name, made in by_name.items():
        assert len(made) > 1, name
        for images in made[1:]:
            assert len(images) == len(made[0]), name
            assert all(np.array_equal(a, b) for a, b in zip(images, made[0], strict=True)), name
