"""HTTP routes for the grid teams' door outcomes (``sampling.lab.doorlog``).

The register lookups are Polars work on this server's register file, run in a
worker thread; the outcome itself is one atomic script.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import polars as pl
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from sampling.api.auth import ServicesDep, current_device, services
from sampling.auth.models import Device
from sampling.errors import NotFound
from sampling.lab.doorlog import (
    DoorLog,
    DoorRecorded,
    DoorVisit,
    check_grid,
    household_residents,
    register_of,
)
from sampling.schema import Base

_RECORD = {"roles": ("grid", "admin")}
_READ = {"roles": ("grid", "admin", "viewer")}


class PersonOutcome(Base, frozen=True, kw_only=True):
    #: The resident code masked as on the door list, and the keyed hash's first 8 hex
    #: digits (as re-sample orders and discrepancies name residents).
    resident: str
    ref: str
    outcome: str | None
    at: float | None


class HouseholdOutcome(Base, frozen=True, kw_only=True):
    building: str
    unit: str
    household: str
    residents: int
    #: The latest outcome recorded for any of the household's residents.
    outcome: str | None
    at: float | None
    people: list[PersonOutcome] = []


class GridOutcomes(Base, frozen=True, kw_only=True):
    round: str
    grid: str
    households: list[HouseholdOutcome]
    counts: dict[str, int]


async def _resample(data_dir: Any, round_id: str, grid: str) -> list[dict[str, Any]]:
    from sampling.lab import report

    def work() -> list[dict[str, Any]]:
        try:
            got = report.collect(data_dir, round_id, ("resample_orders",))
        except report.ReportError as exc:
            raise NotFound(str(exc), round=round_id) from exc
        frame = got["resample_orders"].filter(pl.col("grid") == grid)
        # Positive pools first (urgent), then the rest; walking order within each.
        return frame.sort(
            pl.col("priority") != "urgent", "building", "unit", "household", nulls_last=True
        ).to_dicts()

    return await anyio.to_thread.run_sync(work)


class DoorController(Controller):
    path = "/v1/rounds/{round_id:str}/doors/{grid:str}"
    tags = ["lab"]
    dependencies = {
        "device": Provide(current_device),
        "svc": Provide(services, sync_to_thread=False),
    }

    @post("/outcomes", operation_id="recordDoorOutcome", opt=_RECORD, status_code=200)
    async def record(
        self,
        round_id: FromPath[str],
        grid: FromPath[str],
        data: JSONBody[DoorVisit],
        device: NamedDependency[Device],
        svc: ServicesDep,
    ) -> DoorRecorded:
        """A household's outcome: sampled at home (tube and residents, bound with this
        device), not at home, refused, moved away, or medical staff needed."""
        check_grid(device, grid)
        register = register_of(svc.settings.data_dir)
        members = await anyio.to_thread.run_sync(
            household_residents, register, grid, data.building, data.unit, data.household
        )
        log: DoorLog = svc.doorlog
        return await log.record(device, round_id, grid, data, members, svc.binder)

    @get("/outcomes", operation_id="doorOutcomes", opt=_READ)
    async def outcomes(
        self,
        round_id: FromPath[str],
        grid: FromPath[str],
        device: NamedDependency[Device],
        svc: ServicesDep,
    ) -> GridOutcomes:
        """Every household of the grid with its latest door outcome, live."""
        check_grid(device, grid)
        register = register_of(svc.settings.data_dir)

        def rows() -> pl.DataFrame:
            return (
                register.filter(pl.col("grid") == grid)
                .select("building", "unit", "household", "rhash", "resident")
                .collect()
            )

        frame = await anyio.to_thread.run_sync(rows)
        log: DoorLog = svc.doorlog
        found = await log.outcomes(round_id, frame["rhash"].to_list())
        by: dict[tuple[str, str, str], list[tuple[str, int] | None]] = {}
        people: dict[tuple[str, str, str], list[PersonOutcome]] = {}
        for (b, u, h, rhash, code), got in zip(frame.iter_rows(), found, strict=True):
            by.setdefault((b, u, h), []).append(got)
            people.setdefault((b, u, h), []).append(
                PersonOutcome(
                    resident=f"{code[:4]}**********{code[-4:]}",
                    ref=rhash[:8],
                    outcome=got[0] if got else None,
                    at=got[1] / 1000 if got else None,
                )
            )
        households = []
        counts: dict[str, int] = {}
        for (b, u, h), marks in sorted(by.items()):
            seen = [g for g in marks if g is not None]
            last = max(seen, key=lambda g: g[1]) if seen else None
            if last is not None:
                counts[last[0]] = counts.get(last[0], 0) + 1
            households.append(
                HouseholdOutcome(
                    building=b,
                    unit=u,
                    household=h,
                    residents=len(marks),
                    outcome=last[0] if last else None,
                    at=last[1] / 1000 if last else None,
                    people=people[(b, u, h)],
                )
            )
        return GridOutcomes(round=round_id, grid=grid, households=households, counts=counts)

    @get("/resample", operation_id="gridResampleOrders", opt=_READ)
    async def resample(
        self,
        round_id: FromPath[str],
        grid: FromPath[str],
        device: NamedDependency[Device],
        svc: ServicesDep,
    ) -> list[dict[str, Any]]:
        """The grid's residents to re-sample (positive pools first, urgent), from the archive."""
        check_grid(device, grid)
        return await _resample(svc.settings.data_dir, round_id, grid)
