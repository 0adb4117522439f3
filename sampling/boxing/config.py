"""What boxing needs from the settings: box capacity and the overdue limits.

The values come from :class:`~sampling.settings.Settings` (``SAMPLING_BOX_*`` and the
tube alarms ``SAMPLING_OPEN_MIN``, ``SAMPLING_RESULT_MIN``), read once with the rest;
whoever builds a :class:`~sampling.boxing.service.Boxer` passes them in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
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

    @classmethod
    def from_settings(cls, settings: Settings) -> BoxingConfig:
        return cls(
            capacity=settings.box_capacity,
            unboxed_after=settings.box_unboxed_after,
            pickup_after=settings.box_pickup_after,
            transit_after=settings.box_transit_after,
            intake_after=settings.box_intake_after,
            open_after=settings.open_after,
            result_after=settings.result_after,
        )
