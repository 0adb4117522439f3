"""Codes are ASCII: no Unicode digit or look-alike forms a valid code, anywhere.

``str.isdigit()`` and ``int()`` take every Unicode decimal digit (full-width
``１``, Arabic-Indic ``١``, Devanagari ``१``, ...) and ``isdigit()`` even takes
superscripts (``²``), so a code checked with them accepted ``T１２...`` as valid,
hashed it differently from the printed code, and bound the same resident again.
"""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sampling import codes
from sampling.scan import typed
from tests.conftest import resident, tube

ASCII_CODE = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*")
#: Every character Python reads as a decimal digit, except ASCII 0-9.
DECIMALS = [
    chr(c)
    for c in range(sys.maxunicode + 1)
    if unicodedata.decimal(chr(c), None) is not None and not chr(c).isascii()
]
#: Other characters ``isdigit()`` takes (superscripts, circled digits) and letter look-alikes.
LOOKALIKES = [
    chr(c)
    for c in range(0x80, 0x3_0000)
    if chr(c).isdigit() and unicodedata.decimal(chr(c), None) is None
] + list("ＡＢＲＴＸｔｂｒｘıſΤΒΡΧТВРХ\u3000\u00a0\u200b\ufeffß")
FOREIGN = DECIMALS + LOOKALIKES
VALID = st.sampled_from(
    [tube(n) for n in (1, 7, 123_456)]
    + [codes.make_box(n) for n in (1, 42)]
    + [resident(n) for n in (0, 1, 5)]
    + [codes.make_resident_token("ABCDEFGH12345678")]
)


def test_the_digit_table_is_whole() -> None:
    assert len(DECIMALS) > 600  # every script's 0-9, not a hand-picked few
    assert "１" in DECIMALS and "٣" in DECIMALS and "²" in LOOKALIKES


@given(code=VALID, data=st.data())
def test_a_foreign_character_anywhere_breaks_the_code(code: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(code) - 1), label="position")
    if code[i].isdigit() and data.draw(st.booleans(), label="same value"):
        # The same digit in another script: what int() would read as the same code.
        value = int(code[i])
        ch = data.draw(st.sampled_from([d for d in DECIMALS if unicodedata.decimal(d) == value]))
    else:
        ch = data.draw(st.sampled_from(FOREIGN), label="character")
    bad = code[:i] + ch + code[i + 1 :]
    assert codes.classify(bad) is codes.CodeKind.UNKNOWN
    assert not codes.is_valid(bad)
    assert codes.typo_candidates(bad) == []
    check = typed.check(bad)
    assert not check.accepted
    assert all(set(c) <= ASCII_CODE for c in check.candidates)


@given(code=VALID, chars=st.lists(st.sampled_from(DECIMALS), min_size=1, max_size=18))
def test_codes_written_in_other_digits_are_never_valid(code: str, chars: list[str]) -> None:
    # Every digit of the code replaced by a same-valued digit of another script.
    pool = {unicodedata.decimal(c): c for c in chars}
    bad = "".join(pool.get(int(c), c) if c in "0123456789" else c for c in code)
    if bad == code:
        return
    assert not codes.is_valid(bad)
    assert not typed.check(bad).accepted


@pytest.mark.parametrize("ch", ["²", "³", "¹", "①", "𝟙", "Ⅻ"])
@pytest.mark.parametrize("make", [lambda: tube(5), lambda: resident(5), lambda: codes.make_box(5)])
def test_superscripts_and_circled_digits_are_refused_not_crashed(ch: str, make: object) -> None:
    code = make()  # type: ignore[operator]
    for i in range(1, len(code)):
        bad = code[:i] + ch + code[i + 1 :]
        assert codes.classify(bad) is codes.CodeKind.UNKNOWN
        assert codes.typo_candidates(bad) == []
        assert not typed.check(bad).accepted


def test_ascii_case_is_still_folded_but_not_unicode_case() -> None:
    token = codes.make_resident_token("ABCDEFGH12345678")
    assert codes.is_valid(token.lower())
    assert codes.normalize("  t0001 ") == "T0001"
    # "ı".upper() == "I" and "ſ".upper() == "S": folding them would make a look-alike valid.
    dotless = codes.make_resident_token("ABCDEFGHI2345678")
    assert codes.is_valid(dotless.lower())
    assert not codes.is_valid(dotless.lower().replace("i", "ı"))
    assert codes.normalize("ß") == "ß"
