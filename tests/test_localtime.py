"""Times shown to people are in the district's zone, whatever the server's zone."""

from __future__ import annotations

import pytest

from sampling.localtime import hm, stamp
from sampling.settings import Settings, SettingsError

# 2026-12-02 01:14:05 UTC
EPOCH = 1_796_174_045.0


def test_shanghai_is_eight_hours_ahead_of_utc() -> None:
    assert hm(EPOCH, "UTC") == "01:14"
    assert hm(EPOCH, "Asia/Shanghai") == "09:14"
    assert stamp(EPOCH, "Asia/Shanghai") == "2026-12-02 09:14:05"
    assert stamp(EPOCH, "Asia/Shanghai", seconds=False) == "2026-12-02 09:14"


def test_setting_defaults_to_shanghai_and_refuses_unknown_zones() -> None:
    assert Settings.from_env({}).tz == "Asia/Shanghai"
    assert Settings.from_env({"SAMPLING_TZ": "Europe/Berlin"}).tz == "Europe/Berlin"
    with pytest.raises(SettingsError, match="SAMPLING_TZ"):
        Settings.from_env({"SAMPLING_TZ": "Mars/Olympus"})
