"""The page's check characters (static/scan/checks.js) agree with sampling/codes.py.

Thousands of codes of every kind, valid and with every sort of slip, are
checked in chromium and in Python: the same validity, the same kind, the same
typo candidates and the same answer as ``POST /v1/codes/check``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from sampling import codes
from sampling.scan import typed
from sampling.web.layer import STATIC

pytestmark = pytest.mark.browser
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*X"


@pytest.fixture
def js(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_content("<!doctype html><title>checks</title>")
    page.add_script_tag(path=str(STATIC / "scan" / "checks.js"))
    yield page
    context.close()


def _valid(rng: random.Random) -> list[str]:
    out = []
    for _ in range(150):
        out.append(codes.make_resident_id("".join(rng.choice("0123456789") for _ in range(17))))
        body = "".join(rng.choice(codes._ALNUM) for _ in range(16))
        out.append(codes.make_resident_token(body))
        out.append(codes.make_tube(rng.randrange(10**11)))
        out.append(codes.make_box(rng.randrange(10**9)))
    return out


def _slips(code: str, rng: random.Random) -> list[str]:
    i = rng.randrange(len(code))
    j = rng.randrange(len(code) - 1)
    return [
        code[:i] + rng.choice(ALPHABET) + code[i + 1 :],  # one wrong character
        code[:j] + code[j + 1] + code[j] + code[j + 2 :],  # neighbours swapped
        code[:i] + code[i + 1 :],  # one character dropped
        code.lower()[:9] + "-" + code[9:] + " ",  # typed with a separator
    ]


def test_js_and_python_agree(js: Page) -> None:
    rng = random.Random(13)
    valid = _valid(rng)
    samples = valid + [s for c in valid for s in _slips(c, rng)]
    samples += ["", "T123", "X" * 18, "B12345678901", "r" + "1" * 17]
    got = js.evaluate(
        """(codes) => codes.map((c) => [Checks.isValid(c), Checks.classify(c),
              Checks.typoCandidates(c), Checks.check(c)])""",
        samples,
    )
    assert len(got) == len(samples) > 2500
    for text, (valid_js, kind_js, typos_js, check_js) in zip(samples, got, strict=True):
        assert valid_js == codes.is_valid(text), text
        assert kind_js == codes.classify(text).value, text
        assert typos_js == codes.typo_candidates(text), text
        want = typed.check(text)
        assert check_js["code"] == want.code, text
        assert check_js["accepted"] == want.accepted, text
        assert check_js["kind"] == want.kind.value, text
        if not want.accepted:
            assert check_js["candidates"] == list(want.candidates), text
    # The samples hold what they should: valid codes, and slips that have candidates.
    assert sum(v for v, *_ in got) >= len(valid)
    assert sum(bool(c["candidates"]) for *_, c in got if not c["accepted"]) > 500
