"""Times as people read them: in the district's time zone, one setting for everything.

Servers and containers often run in UTC; a sampler at 9 a.m. in Zhengzhou must
read 09:14, not 01:14, in a refusal, a page, a CLI table or a PDF. Every place
that shows a time to a person formats it here, with the zone from
:attr:`sampling.settings.Settings.tz` (``SAMPLING_TZ``, default Asia/Shanghai).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TZ = "Asia/Shanghai"


@lru_cache(maxsize=8)
def zone(name: str = DEFAULT_TZ) -> ZoneInfo:
    """The zone called ``name``; raises ``ValueError`` for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected e.g. Asia/Shanghai)") from exc


def local(epoch: float, tz: str = DEFAULT_TZ) -> datetime:
    """Unix seconds as an aware datetime in ``tz``."""
    return datetime.fromtimestamp(epoch, zone(tz))


def hm(epoch: float, tz: str = DEFAULT_TZ) -> str:
    """``09:14``: for refusals and live lists, where the day is today."""
    return f"{local(epoch, tz):%H:%M}"


def stamp(epoch: float, tz: str = DEFAULT_TZ, *, seconds: bool = True) -> str:
    """``2026-12-02 09:14:05``: for tables, files and audit trails."""
    return local(epoch, tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
