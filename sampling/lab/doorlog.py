"""What a grid team found at each door: outcomes, journaled, feeding coverage and lists.

For a household on its grid's door list the team records one outcome:

* ``sampled`` - sampled at home: the residents' codes scanned into a tube with
  the team's own device, through the binding core (``Binder.batch``: every
  binding rule holds, a resident sampled elsewhere is refused as at a point);
* ``not_home``, ``refused`` - knocked, no sample; the next list says so;
* ``moved`` - the household moved away: it leaves the coverage denominator and
  the next list, as a resident marked away in the register does;
* ``medical`` - door sampling by medical staff is needed: the next list marks
  the household ``door_medical``.

The household is named by its address on the list (grid, building, unit,
household); its residents are looked up in the register on this server and only
their keyed hashes reach Redis. ``doorlog.lua`` writes each resident's outcome
and its journal entry (``k = door``) in one atomic step; the archiver turns the
entries into ``door_outcomes.parquet``, which coverage and the next door list read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final, Literal

import polars as pl
from msgspec import Meta

from sampling import codes
from sampling.binding import keys as binding_keys
from sampling.binding.models import Batch, BatchOp, OpResult, Purpose
from sampling.codecheck import check_code
from sampling.errors import BadInput, Forbidden, NotFound, Refusal
from sampling.lab import keys
from sampling.lab.scripts import Door
from sampling.oplog import fingerprint
from sampling.schema import Base, Code, OpId, Text
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.auth.models import Device
    from sampling.binding.service import Binder
    from sampling.privacy import ResidentHasher
    from sampling.store.client import AnyRedis

DoorOutcome = Literal["sampled", "not_home", "refused", "moved", "medical"]
OUTCOMES: Final[tuple[DoorOutcome, ...]] = ("sampled", "not_home", "refused", "moved", "medical")
OUTCOME_TEXT: Final = {
    "sampled": "已入户采样 / sampled at home",
    "not_home": "无人在家 / not at home",
    "refused": "拒绝 / refused",
    "moved": "已搬离 / moved away",
    "medical": "需医护上门 / medical staff needed",
}
_CAPACITIES: Final = (1, 5, 10, 20)


class DoorVisit(Base, frozen=True, kw_only=True):
    """One household's outcome. With ``sampled``: the tube and the residents' codes."""

    op: OpId
    building: Text
    unit: Text
    household: Text
    outcome: DoorOutcome
    tube: Code | None = None
    residents: Annotated[list[Code], Meta(max_length=20)] = []
    #: ``resample`` for a re-sample order (one resident, a single tube).
    purpose: Purpose = "pool"


class DoorRecorded(Base, frozen=True, kw_only=True):
    round: str
    grid: str
    outcome: DoorOutcome
    #: Residents whose outcome was recorded.
    recorded: int
    replayed: bool = False
    tube: str | None = None
    #: With ``sampled``: each binding step and its status (a refused scan says why).
    binding: list[OpResult] = []


def check_grid(device: Device, grid: str) -> None:
    """A grid team works in its own grid only; admins and viewers in any."""
    if device.role == "grid" and device.grid != grid:
        raise Forbidden(f"this grid team works in grid {device.grid}, not {grid}", grid=device.grid)


def household_residents(
    register: pl.LazyFrame, grid: str, building: str, unit: str, household: str
) -> list[tuple[str, str]]:
    """[(resident code, rhash hex)] of one household in the register."""
    frame = (
        register.filter(
            (pl.col("grid") == grid)
            & (pl.col("building") == building)
            & (pl.col("unit") == unit)
            & (pl.col("household") == household)
        )
        .select("resident", "rhash")
        .collect()
    )
    return list(frame.iter_rows())


class DoorLog:
    def __init__(self, redis: AnyRedis, hasher: ResidentHasher) -> None:
        self._redis = redis
        self._hasher = hasher
        self._run = Runner(redis)

    async def record(
        self,
        device: Device,
        round_id: str,
        grid: str,
        visit: DoorVisit,
        members: list[tuple[str, str]],
        binder: Binder,
    ) -> DoorRecorded:
        """Record ``visit`` for the household whose register rows are ``members``."""
        check_grid(device, grid)
        if not members:
            raise NotFound(
                f"no household {visit.building}-{visit.unit}-{visit.household} "
                f"in grid {grid}'s register",
                grid=grid,
            )
        if not await self._redis.exists(binding_keys.meta(round_id)):
            raise NotFound(f"no round {round_id}", round=round_id)
        hashes = [bytes.fromhex(h) for _, h in members]
        tube = ""
        steps: list[OpResult] = []
        if visit.outcome == "sampled":
            tube, hashes, steps = await self._sample(device, round_id, visit, members, binder)
        elif visit.tube or visit.residents:
            raise BadInput("a tube and residents go only with the outcome 'sampled'")
        payload = f"{visit.outcome}|{tube}|{grid}|" + ",".join(sorted(h.hex() for h in hashes))
        call = Door(round_id=round_id, device=device.id, site=device.site, op=visit.op,
                    fingerprint=fingerprint(visit.op, payload.encode()),
                    outcome=visit.outcome, tube=tube, grid=grid, residents=hashes)  # fmt: skip
        reply = await self._run(call)
        if reply.status == "round_not_found":
            raise NotFound(f"no round {round_id}", round=round_id)
        if reply.status == "op_reused":
            raise Refusal(
                "operation_reused",
                f"operation {visit.op} was used before for another door outcome",
                422,
                op=visit.op,
            )
        return DoorRecorded(
            round=round_id,
            grid=grid,
            outcome=visit.outcome,
            recorded=reply.recorded,
            replayed=reply.status == "replayed",
            tube=tube or None,
            binding=steps,
        )

    async def _sample(
        self,
        device: Device,
        round_id: str,
        visit: DoorVisit,
        members: list[tuple[str, str]],
        binder: Binder,
    ) -> tuple[str, list[bytes], list[OpResult]]:
        if not visit.tube or not visit.residents:
            raise BadInput("'sampled' needs the tube and the residents' codes scanned into it")
        if not device.site:
            raise BadInput(
                "this device has no sampling site: register the grid team's device with "
                "--site (its door-sampling point) to bind tubes",
                device=device.id,
            )
        tube = check_code(visit.tube, codes.CodeKind.TUBE, "tube")
        mine = {h for _, h in members}
        scanned = [check_code(c, codes.CodeKind.RESIDENT, "resident") for c in visit.residents]
        for code in scanned:
            if self._hasher.hex(code) not in mine:
                raise BadInput(
                    f"resident {code[:4]}…{code[-4:]} is not registered at this household",
                    field="residents",
                )
        n = len(scanned)
        if visit.purpose == "resample" and n != 1:
            raise BadInput("a re-sample goes into a single tube: one resident per tube")
        capacity = next(c for c in _CAPACITIES if c >= n)
        # The server numbers the steps after the device's highest sequence number.
        first = await self._redis.strlen(binding_keys.oplog(round_id, device.id)) // 8 + 1
        ops = [BatchOp(op=f"{visit.op}:open", seq=first, kind="open", tube=tube,
                       capacity=capacity, purpose=visit.purpose)]  # fmt: skip
        ops += [
            BatchOp(op=f"{visit.op}:scan{i}", seq=first + 1 + i, kind="scan", tube=tube,
                    resident=code)
            for i, code in enumerate(scanned)
        ]  # fmt: skip
        if capacity > n:
            ops.append(BatchOp(op=f"{visit.op}:close", seq=first + 1 + n, kind="close", tube=tube))
        done = await binder.batch(device, round_id, Batch(ops=ops))
        opened = done.results[0]
        if opened.status != "ok":
            raise Refusal(opened.status, opened.message, 409, tube=tube)
        bound = [
            bytes.fromhex(self._hasher.hex(code))
            for code, res in zip(scanned, done.results[1 : 1 + n], strict=True)
            if res.status == "ok"
        ]
        if not bound:
            refused = next(r for r in done.results[1 : 1 + n] if r.status != "ok")
            raise Refusal(refused.status, refused.message, 409, tube=tube)
        return tube, bound, done.results

    async def outcomes(self, round_id: str, rhashes: list[str]) -> list[tuple[str, int] | None]:
        """Each resident's latest door outcome and when (ms), or None, in order."""
        if not rhashes:
            return []
        raw = await self._redis.hmget(keys.door(round_id), [bytes.fromhex(h) for h in rhashes])
        out: list[tuple[str, int] | None] = []
        for v in raw:
            if v is None:
                out.append(None)
                continue
            outcome, at, *_ = (v.decode() if isinstance(v, bytes) else v).split("|")
            out.append((outcome, int(at)))
        return out

    async def counts(self, round_id: str) -> dict[str, int]:
        raw = await self._redis.hgetall(keys.door_count(round_id))
        return {
            (k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items() if int(v)
        }


def register_of(data_dir: Path) -> pl.LazyFrame:
    from sampling.lab.sources import scan_register

    return scan_register(data_dir)
