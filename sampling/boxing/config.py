"""Boxing settings: box capacity and the overdue limits, read once from the environment.

``SAMPLING_BOX_CAPACITY`` (tubes per box, default 100) and the overdue limits in
minutes: ``SAMPLING_BOX_UNBOXED_MIN`` (closed tube not in a box, 30),
``SAMPLING_BOX_PICKUP_MIN`` (sealed box not picked up, 60),
``SAMPLING_BOX_TRANSIT_MIN`` (box in transit, 120) and
``SAMPLING_BOX_INTAKE_MIN`` (received box with intake open, 60).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

from sampling.settings import SettingsError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sampling.settings import Settings


class BoxingConfig(msgspec.Struct, frozen=True, kw_only=True):
    capacity: int = 100
    #: Overdue limits, seconds.
    unboxed_after: int = 30 * 60
    pickup_after: int = 60 * 60
    transit_after: int = 120 * 60
    intake_after: int = 60 * 60
    #: A tube open longer than this, and a tube received without a result for longer
    #: than this (``Settings.open_after``, ``Settings.result_after``).
    open_after: int = 60 * 60
    result_after: int = 4 * 3600

    def with_alarms(self, settings: Settings) -> BoxingConfig:
        """These limits with the tube alarms of ``settings``."""
        return msgspec.structs.replace(
            self,
            open_after=settings.open_after,
            result_after=settings.result_after,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BoxingConfig:
        env = os.environ if env is None else env

        def number(name: str, default: int) -> int:
            raw = env.get("SAMPLING_BOX_" + name, str(default)).strip()
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"SAMPLING_BOX_{name}={raw!r} is not a whole number") from None
            if value <= 0:
                raise SettingsError(f"SAMPLING_BOX_{name} must be positive, got {raw}")
            return value

        return cls(
            capacity=number("CAPACITY", 100),
            unboxed_after=number("UNBOXED_MIN", 30) * 60,
            pickup_after=number("PICKUP_MIN", 60) * 60,
            transit_after=number("TRANSIT_MIN", 120) * 60,
            intake_after=number("INTAKE_MIN", 60) * 60,
        )
