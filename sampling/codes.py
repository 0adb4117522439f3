"""The printed codes of the field, and their check characters.

Three kinds of code reach the service, each carrying its own check character so
that a partial or garbled read is refused before it touches Redis:

* **Resident code.** Either the 18-character citizen ID (17 digits, then the
  ISO 7064 MOD 11-2 check character ``0-9`` or ``X``), or the QR token form we
  issue where the ID must not be shown: ``R`` + 16 characters of ``0-9A-Z`` +
  an ISO 7064 MOD 37-2 check character (``0-9A-Z`` or ``*``; 18 characters).
* **Tube code.** ``T`` + 11 digits + a Damm check digit (13 characters),
  printed as a Code 128 barcode on the tube label.
* **Box code.** ``B`` + 9 digits + a Damm check digit (11 characters).

Damm rather than ISO 7064 MOD 11,10 for the digit codes: the hybrid system
misses some neighbour swaps (``...78...`` against ``...87...``), Damm misses
none and needs no eleventh symbol.

Codes are ASCII: only ``0-9``, ``A-Z`` and the check symbols above form one.
Python's ``str.isdigit()`` and ``int()`` also take full-width, Arabic-Indic and
superscript digits (``１２３``, ``١٢٣``, ``²``), so this module never uses them on
a code: a look-alike would hash differently from the printed code and bind the
same resident twice.

Every scheme here detects every single wrong character and every swap of two
neighbours, which is what :func:`typo_candidates` relies on to offer the
sampler the codes they probably meant.
"""

from __future__ import annotations

import string
from enum import StrEnum
from typing import Final

_DIGITS: Final = string.digits
_DIGIT_SET: Final = frozenset(_DIGITS)
_ALNUM: Final = string.digits + string.ascii_uppercase
_ID_WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK: Final = "10X98765432"
_ALNUM37: Final = _ALNUM + "*"
# The weakly totally anti-symmetric quasigroup of order 10 from Damm's thesis.
_DAMM: Final = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

RESIDENT_LEN: Final = 18
TUBE_LEN: Final = 13
BOX_LEN: Final = 11


class CodeKind(StrEnum):
    RESIDENT = "resident"
    TUBE = "tube"
    BOX = "box"
    UNKNOWN = "unknown"


def id_check_char(body: str) -> str:
    """ISO 7064 MOD 11-2 check character of a 17-digit citizen-ID body."""
    total = sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def digit_check(body: str) -> str:
    """Damm check digit of a string of digits."""
    interim = 0
    for c in body:
        interim = _DAMM[interim][int(c)]
    return _DIGITS[interim]


def alnum_check(body: str) -> str:
    """ISO 7064 MOD 37-2 check character of a string of ``0-9A-Z``."""
    p = 0
    for c in body:
        p = ((p + _ALNUM.index(c)) * 2) % 37
    return _ALNUM37[(38 - p) % 37]


#: Only ASCII letters are folded: ``str.upper()`` maps ``ı`` and ``ſ`` to ``I`` and ``S``
#: and ``ß`` to ``SS``, turning a look-alike into a valid-looking code.
_UPPER: Final = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_SPACE: Final = " \t\r\n\v\f"


def normalize(text: str) -> str:
    """The canonical form of a code as read or typed: ASCII blanks trimmed, ASCII upper case.

    Any other character is kept as it is, so :func:`classify` refuses it.
    """
    return text.strip(_SPACE).translate(_UPPER)


def _digits(text: str) -> bool:
    """True when ``text`` is non-empty and only ASCII ``0-9`` (unlike ``str.isdigit``)."""
    return bool(text) and all(c in _DIGIT_SET for c in text)


def classify(text: str) -> CodeKind:
    """The kind a text has the *shape* of (length, prefix, alphabet), valid or not."""
    code = normalize(text)
    n = len(code)
    if n == RESIDENT_LEN and _digits(code[:17]) and code[17] in _ID_CHECK:
        return CodeKind.RESIDENT
    if (
        n == RESIDENT_LEN
        and code[0] == "R"
        and all(c in _ALNUM for c in code[1:17])
        and code[17] in _ALNUM37
    ):
        return CodeKind.RESIDENT
    if n == TUBE_LEN and code[0] == "T" and _digits(code[1:]):
        return CodeKind.TUBE
    if n == BOX_LEN and code[0] == "B" and _digits(code[1:]):
        return CodeKind.BOX
    return CodeKind.UNKNOWN


def is_valid(text: str, kind: CodeKind | None = None) -> bool:
    """True when ``text`` is a well-formed code (of ``kind``, when given)."""
    code = normalize(text)
    found = classify(code)
    if found is CodeKind.UNKNOWN or (kind is not None and found is not kind):
        return False
    if found is CodeKind.RESIDENT:
        if code[0] == "R":
            return alnum_check(code[1:17]) == code[17]
        return id_check_char(code[:17]) == code[17]
    return digit_check(code[1:-1]) == code[-1]


def make_resident_id(body17: str) -> str:
    return body17 + id_check_char(body17)


def make_resident_token(body16: str) -> str:
    return "R" + body16 + alnum_check(body16)


def make_tube(number: int) -> str:
    body = f"{number:011d}"
    return "T" + body + digit_check(body)


def make_box(number: int) -> str:
    body = f"{number:09d}"
    return "B" + body + digit_check(body)


def tube_number(code: str) -> int:
    """The 11-digit serial of a (valid) tube code, as an integer."""
    return int(code[1:12])


def _alphabet(code: str, position: int) -> str:
    if classify(code) is CodeKind.RESIDENT and code[0] == "R" and position > 0:
        return _ALNUM37 if position == RESIDENT_LEN - 1 else _ALNUM
    if position == RESIDENT_LEN - 1 and len(code) == RESIDENT_LEN and code[0] != "R":
        return _DIGITS + "X"
    if position == 0 and code[0] in "TBR":
        return code[0]
    return _DIGITS


def typo_candidates(text: str) -> list[str]:
    """Valid codes one wrong character or one swap of neighbours away from ``text``.

    Empty when ``text`` is itself valid or no single slip explains it. The
    shape (length and prefix) is kept, so a typed tube code is only ever
    corrected to tube codes.
    """
    code = normalize(text)
    if classify(code) is CodeKind.UNKNOWN or is_valid(code):
        return []
    found: set[str] = set()
    for i in range(len(code)):
        for c in _alphabet(code, i):
            if c != code[i]:
                cand = code[:i] + c + code[i + 1 :]
                if is_valid(cand):
                    found.add(cand)
    for i in range(len(code) - 1):
        if code[i] != code[i + 1]:
            cand = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            if is_valid(cand):
                found.add(cand)
    return sorted(found)
