"""Hand-typed codes: accepted, or refused with a reason and the codes probably meant."""

from __future__ import annotations

import random

import pytest

from sampling import codes
from sampling.codes import CodeKind
from sampling.scan import typed

_rng = random.Random(5)
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SAMPLE = (
    [
        codes.make_resident_id("".join(_rng.choice("0123456789") for _ in range(17)))
        for _ in range(6)
    ]
    + [codes.make_resident_token("".join(_rng.choice(_ALNUM) for _ in range(16))) for _ in range(6)]
    + [codes.make_tube(_rng.randrange(10**11)) for _ in range(6)]
    + [codes.make_box(_rng.randrange(10**9)) for _ in range(6)]
)


def _alphabet(code: str, i: int) -> str:
    if i == 0 and code[0] in "TBR":
        return code[0]
    if code[0] == "R":
        return _ALNUM + ("*" if i == len(code) - 1 else "")
    if len(code) == codes.RESIDENT_LEN and i == len(code) - 1:
        return "0123456789X"
    return "0123456789"


@pytest.mark.parametrize("good", SAMPLE)
def test_every_single_slip_is_refused_and_offers_the_original(good: str) -> None:
    slips = {good[:i] + c + good[i + 1 :] for i in range(len(good)) for c in _alphabet(good, i)}
    slips |= {good[:i] + good[i + 1] + good[i] + good[i + 2 :] for i in range(len(good) - 1)}
    slips.discard(good)
    assert slips
    for slip in slips:
        result = typed.check(slip)
        assert not result.accepted, slip
        # A swap can move a letter among digits: the shape breaks before the check.
        assert result.reason in (
            "check_failed",
            "bad_characters",
            "unknown_prefix",
            "wrong_length",
        ), slip
        assert good in result.candidates, slip
        assert all(codes.is_valid(c) for c in result.candidates)


@pytest.mark.parametrize("good", SAMPLE)
def test_valid_codes_are_accepted_as_typed(good: str) -> None:
    result = typed.check(f"  {good.lower()} ")
    assert result.accepted
    assert result.code == good
    assert result.reason is None
    assert result.candidates == ()
    assert result.kind is codes.classify(good)


def test_grouped_typing_is_accepted() -> None:
    tube = codes.make_tube(12345678901)
    assert typed.check(f"{tube[:5]} {tube[5:9]}-{tube[9:]}").accepted


@pytest.mark.parametrize(
    ("text", "reason", "kind"),
    [
        ("", "empty", CodeKind.UNKNOWN),
        ("T1234", "wrong_length", CodeKind.TUBE),
        (codes.make_tube(5) + "1", "wrong_length", CodeKind.TUBE),
        ("B12345", "wrong_length", CodeKind.BOX),
        ("1101051949123100", "wrong_length", CodeKind.RESIDENT),
        ("X123456789012", "unknown_prefix", CodeKind.UNKNOWN),
    ],
)
def test_refusal_reasons(text: str, reason: str, kind: CodeKind) -> None:
    result = typed.check(text)
    assert not result.accepted
    assert result.reason == reason
    assert result.kind is kind
    assert result.candidates == ()


def test_a_bad_character_offers_the_codes_it_may_stand_for() -> None:
    tube = codes.make_tube(12345678901)
    for slip in (tube[:6] + "#" + tube[7:], tube[:6] + "O" + tube[7:], tube[1] + "T" + tube[2:]):
        result = typed.check(slip)
        assert result.reason == "bad_characters"
        assert tube in result.candidates
        assert all(codes.is_valid(c) and c.startswith("T") for c in result.candidates)
