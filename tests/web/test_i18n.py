"""The pages' words: both languages for every key; placeholders filled."""

from __future__ import annotations

import pytest

from sampling.web import i18n, routes  # noqa: F401 - importing the pages registers their words
from sampling.web.layer import age


def test_every_key_has_both_languages() -> None:
    assert i18n.check() == []


def test_text_fills_placeholders_and_defaults_to_chinese() -> None:
    assert i18n.text("dash.title", round="r1") == "指挥大屏 · 轮次 r1"
    assert i18n.text("dash.title", "en", round="r1") == "Dashboard · round r1"
    assert i18n.lang_of(None) == "zh" and i18n.lang_of("fr") == "zh" and i18n.lang_of("en") == "en"


def test_missing_key_raises() -> None:
    with pytest.raises(i18n.MissingMessage):
        i18n.text("no.such.key")


def test_register_refuses_a_clash() -> None:
    with pytest.raises(ValueError, match="already defined"):
        i18n.register({"app.name": {"zh": "别的", "en": "other"}})


def test_age_reads_like_people_say_it() -> None:
    assert age(42, "en") == "42 s"
    assert age(3 * 3600 + 5 * 60, "en") == "3 h 05 min"
    assert age(3 * 3600 + 5 * 60, "zh") == "3 小时 05 分"
