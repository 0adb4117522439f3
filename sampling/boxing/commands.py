"""The custody steps: open, fill, seal and hand over a box (the sealer), pick it up (the
courier), receive it and scan its tubes in (the lab desk).

Every step goes one way: the codes are checked in Python (a garbled read never
reaches Redis), the role is checked, and ``custody.lua`` checks every rule of the
box, writes it, records the op for exactly-once retries and appends the journal
entry, in one atomic step in the round's slot. A refusal comes back as a status
word, which :func:`~sampling.boxing.refusals.refusal` turns into a
:class:`~sampling.errors.Refusal` whose message names what disagrees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampling import codes
from sampling.binding.scripts import Claim
from sampling.boxing import keys
from sampling.boxing.access import require_role
from sampling.boxing.models import BoxResult
from sampling.boxing.refusals import refusal
from sampling.boxing.replies import text
from sampling.boxing.scripts import (
    BoxAdd,
    BoxHandover,
    BoxOpen,
    BoxPickup,
    BoxReceive,
    BoxRemove,
    BoxSeal,
    Custody,
    IntakeClose,
    Step,
    TubeIntake,
)
from sampling.codecheck import check_code
from sampling.errors import NotFound, Refusal

if TYPE_CHECKING:
    from sampling.auth.models import Device
    from sampling.boxing.config import BoxingConfig
    from sampling.store.client import AnyRedis
    from sampling.store.scripts import Runner

#: Times a seal reads the box's tubes again when another sealer changed them meanwhile.
_SEAL_RETRIES = 5


class _BoxChanged(Exception):
    """Another sealer changed the box between reading its tubes and the seal step."""


class Commands:
    def __init__(self, redis: AnyRedis, run: Runner, config: BoxingConfig) -> None:
        self._redis = redis
        self._run = run
        self._config = config

    # -- the sealer ----------------------------------------------------------------

    async def open(
        self, device: Device, round_id: str, box: str, *, seq: int, op: str, lab: str = ""
    ) -> BoxResult:
        step = _step(BoxOpen, device, round_id, box, seq=seq, op=op)
        if not await self._redis.exists(keys.meta(round_id)):
            raise NotFound(f"no round {round_id}", round=round_id)
        claim = Claim(key=keys.box_claim(step.box), code=step.box, round_id=round_id)
        held = await self._run(claim)
        return await self._apply(
            BoxOpen(step=step, capacity=self._config.capacity, lab=lab, claimed=bool(held))
        )

    async def add(
        self, device: Device, round_id: str, box: str, *, tube: str, seq: int, op: str
    ) -> BoxResult:
        step = _step(BoxAdd, device, round_id, box, seq=seq, op=op, tube=tube)
        return await self._apply(BoxAdd(step=step))

    async def remove(
        self, device: Device, round_id: str, box: str, *, tube: str, seq: int, op: str, reason: str
    ) -> BoxResult:
        step = _step(BoxRemove, device, round_id, box, seq=seq, op=op, tube=tube)
        return await self._apply(BoxRemove(step=step, reason=reason))

    async def seal(
        self,
        device: Device,
        round_id: str,
        box: str,
        *,
        seq: int,
        op: str,
        tubes: int,
        samples: int,
        lab: str = "",
    ) -> BoxResult:
        step = _step(BoxSeal, device, round_id, box, seq=seq, op=op)
        for _ in range(_SEAL_RETRIES):
            inside = await self._redis.hkeys(keys.box_tubes(round_id, step.box))
            call = BoxSeal(
                step=step, tubes=tubes, samples=samples, lab=lab, inside=sorted(map(text, inside))
            )
            try:
                return await self._apply(call)
            except _BoxChanged:
                continue
        raise Refusal(
            "box_busy",
            f"Box {step.box} kept changing while it was being sealed; seal it again.",
            409,
            box=step.box,
        )

    async def handover(
        self,
        device: Device,
        round_id: str,
        box: str,
        *,
        seq: int,
        op: str,
        courier: str,
        lab: str = "",
    ) -> BoxResult:
        step = _step(BoxHandover, device, round_id, box, seq=seq, op=op)
        return await self._apply(BoxHandover(step=step, courier=courier, lab=lab))

    # -- the courier and the lab -----------------------------------------------------

    async def pickup(
        self, device: Device, round_id: str, box: str, *, seq: int, op: str, place: str = ""
    ) -> BoxResult:
        step = _step(BoxPickup, device, round_id, box, seq=seq, op=op)
        return await self._apply(BoxPickup(step=step, place=place))

    async def receive(
        self, device: Device, round_id: str, box: str, *, seq: int, op: str
    ) -> BoxResult:
        step = _step(BoxReceive, device, round_id, box, seq=seq, op=op)
        return await self._apply(BoxReceive(step=step))

    async def intake(
        self,
        device: Device,
        round_id: str,
        box: str,
        *,
        tube: str,
        seq: int,
        op: str,
        condition: str = "ok",
    ) -> BoxResult:
        step = _step(TubeIntake, device, round_id, box, seq=seq, op=op, tube=tube)
        return await self._apply(TubeIntake(step=step, condition=condition))

    async def close_intake(
        self, device: Device, round_id: str, box: str, *, seq: int, op: str
    ) -> BoxResult:
        step = _step(IntakeClose, device, round_id, box, seq=seq, op=op)
        return await self._apply(IntakeClose(step=step))

    # -- the shared path -------------------------------------------------------------

    async def _apply(self, call: Custody) -> BoxResult:
        reply = await self._run(call)
        if reply.status == "revoked":
            raise Refusal("token_revoked", "this device's token was revoked", 401)
        if reply.status == "box_changed":
            raise _BoxChanged
        if reply.status != "ok":
            raise await refusal(self._redis, call, reply)
        step = call.step
        return BoxResult(
            seq=step.seq,
            op=step.op,
            kind=call.kind,
            box=step.box,
            tube=step.tube or None,
            status=reply.status,
            state=reply.state,
            tubes=reply.tubes,
            samples=reply.samples,
            replayed=reply.replayed,
        )


def _step(
    kind: type[Custody],
    device: Device,
    round_id: str,
    box: str,
    *,
    seq: int,
    op: str,
    tube: str = "",
) -> Step:
    """The step, once the device's role may take it and its codes read right (a garbled
    read never reaches Redis)."""
    require_role(device, kind.kind)
    return Step(
        device=device,
        round_id=round_id,
        seq=seq,
        op=op,
        box=check_code(box, codes.CodeKind.BOX, "box"),
        tube=check_code(tube, codes.CodeKind.TUBE, "tube") if tube else "",
    )
