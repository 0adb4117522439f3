"""Checking a code typed by hand before it is accepted.

A sampler types a code when the scanner cannot read it. The check tells them
*what* is wrong (the length, the prefix, a character that cannot occur, or the
check character) and offers the valid codes one slip away, so they can pick
the one printed on the label instead of typing it again.
"""

from __future__ import annotations

import re
from typing import Final

from sampling import codes
from sampling.scan.models import TypedCheck

# People group long codes when they type them: spaces and hyphens carry nothing.
_SEPARATORS: Final = re.compile(r"[\s\-]+", re.ASCII)
# ASCII only: str.isdigit() would also take full-width and superscript digits.
_DIGITS: Final = frozenset("0123456789")
_ALLOWED: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*")
_LENGTHS: Final = {
    "T": (codes.TUBE_LEN, codes.CodeKind.TUBE),
    "B": (codes.BOX_LEN, codes.CodeKind.BOX),
    "R": (codes.RESIDENT_LEN, codes.CodeKind.RESIDENT),
}


def clean(text: str) -> str:
    """The typed text in canonical form, separators removed."""
    return _SEPARATORS.sub("", codes.normalize(text))


def _intended_kind(code: str) -> codes.CodeKind:
    """The kind the typist most likely meant, from the first character."""
    if code[:1] in _LENGTHS:
        return _LENGTHS[code[0]][1]
    if code[:1] in _DIGITS:
        return codes.CodeKind.RESIDENT
    return codes.CodeKind.UNKNOWN


def _refusal(code: str) -> str:
    """Why ``code`` (not valid) is refused, the most basic fault first."""
    if not code:
        return "empty"
    if any(c not in _ALLOWED for c in code):
        return "bad_characters"
    first = code[0]
    if first in _DIGITS:
        # A citizen ID: digits, with X allowed only as the check character.
        if any(c not in _DIGITS for c in code[:-1]) or code[-1] not in "0123456789X":
            return "bad_characters"
        expected = codes.RESIDENT_LEN
    elif first in _LENGTHS:
        expected = _LENGTHS[first][0]
    else:
        return "unknown_prefix"
    if len(code) != expected:
        return "wrong_length"
    if codes.classify(code) is codes.CodeKind.UNKNOWN:
        # Right prefix and length, but a letter where only digits may stand.
        return "bad_characters"
    return "check_failed"


def candidates(code: str) -> tuple[str, ...]:
    """Valid codes one wrong character or one neighbour swap away from ``code``.

    :func:`sampling.codes.typo_candidates` keeps the shape of the code, so it
    has nothing to offer when the slip itself broke the shape (a swap that
    moved the prefix letter or the citizen ID's ``X`` inward); only then are
    all characters tried at every position.
    """
    found = codes.typo_candidates(code)
    if found or codes.classify(code) is not codes.CodeKind.UNKNOWN:
        return tuple(found)
    if len(code) not in (codes.RESIDENT_LEN, codes.TUBE_LEN, codes.BOX_LEN):
        return ()
    near = {code[:i] + c + code[i + 1 :] for i in range(len(code)) for c in _ALLOWED}
    near |= {code[:i] + code[i + 1] + code[i] + code[i + 2 :] for i in range(len(code) - 1)}
    return tuple(sorted(c for c in near if c != code and codes.is_valid(c)))


def check(text: str) -> TypedCheck:
    """Accept ``text`` if it is a valid code, else refuse it with a reason and candidates."""
    code = clean(text)
    if codes.is_valid(code):
        return TypedCheck(code=code, accepted=True, kind=codes.classify(code))
    return TypedCheck(
        code=code,
        accepted=False,
        kind=_intended_kind(code),
        reason=_refusal(code),
        candidates=candidates(code),
    )
