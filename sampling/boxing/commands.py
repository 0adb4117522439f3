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


def _box(box: str) -> str:
    return check_code(box, codes.CodeKind.BOX, "box")


def _tube(tube: str) -> str:
    return check_code(tube, codes.CodeKind.TUBE, "tube")


class Commands:
    def __init__(self, redis: AnyRedis, run: Runner, config: BoxingConfig) -> None:
        self._redis = redis
        self._run = run
        self._config = config

    # -- the sealer ----------------------------------------------------------------

    async def open(
        self, device: Device, round_id: str, box: str, *, seq: int, op: str, lab: str = ""
    ) -> BoxResult:
        require_role(device, "open")
        code = _box(box)
        if not await self._redis.exists(keys.meta(round_id)):
            raise NotFound(f"no round {round_id}", round=round_id)
        held = await self._run(Claim(key=keys.box_claim(code), code=code, round_id=round_id))
        return await self._step(
            BoxOpen(
                device=device,
                round_id=round_id,
                seq=seq,
                op=op,
                box=code,
                capacity=self._config.capacity,
                lab=lab,
                claimed=bool(held),
            ),
        )

    async def add(
        self, device: Device, round_id: str, box: str, *, tube: str, seq: int, op: str
    ) -> BoxResult:
        require_role(device, "add")
        return await self._step(
            BoxAdd(
                device=device, round_id=round_id, seq=seq, op=op, box=_box(box), tube=_tube(tube)
            ),
        )

    async def remove(
        self, device: Device, round_id: str, box: str, *, tube: str, seq: int, op: str, reason: str
    ) -> BoxResult:
        require_role(device, "remove")
        return await self._step(
            BoxRemove(
                device=device,
                round_id=round_id,
                seq=seq,
                op=op,
                box=_box(box),
                tube=_tube(tube),
                reason=reason,
            ),
        )

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
        require_role(device, "seal")
        code = _box(box)
        for _ in range(_SEAL_RETRIES):
            inside = sorted(
                text(t) for t in await self._redis.hkeys(keys.box_tubes(round_id, code))
            )
            call = BoxSeal(
                device=device,
                round_id=round_id,
                seq=seq,
                op=op,
                box=code,
                tubes=tubes,
                samples=samples,
                lab=lab,
                inside=inside,
            )
            try:
                return await self._step(call)
            except _BoxChanged:
                continue
        raise Refusal(
            "box_busy",
            f"Box {code} kept changing while it was being sealed; seal it again.",
            409,
            box=code,
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
        require_role(device, "handover")
        return await self._step(
            BoxHandover(
                device=device,
                round_id=round_id,
                seq=seq,
                op=op,
                box=_box(box),
                courier=courier,
                lab=lab,
            ),
        )

    # -- the courier and the lab -----------------------------------------------------

    async def pickup(
        self, device: Device, round_id: str, box: str, *, seq: int, op: str, place: str = ""
    ) -> BoxResult:
        require_role(device, "pickup")
        return await self._step(
            BoxPickup(device=device, round_id=round_id, seq=seq, op=op, box=_box(box), place=place),
        )

    async def receive(
        self, device: Device, round_id: str, box: str, *, seq: int, op: str
    ) -> BoxResult:
        require_role(device, "receive")
        return await self._step(
            BoxReceive(device=device, round_id=round_id, seq=seq, op=op, box=_box(box))
        )

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
        require_role(device, "intake")
        return await self._step(
            TubeIntake(
                device=device,
                round_id=round_id,
                seq=seq,
                op=op,
                box=_box(box),
                tube=_tube(tube),
                condition=condition,
            ),
        )

    async def close_intake(
        self, device: Device, round_id: str, box: str, *, seq: int, op: str
    ) -> BoxResult:
        require_role(device, "intake_close")
        return await self._step(
            IntakeClose(device=device, round_id=round_id, seq=seq, op=op, box=_box(box))
        )

    # -- the shared path -------------------------------------------------------------

    async def _step(self, call: Custody) -> BoxResult:
        reply = await self._run(call)
        if reply.status == "revoked":
            raise Refusal("token_revoked", "this device's token was revoked", 401)
        if reply.status == "box_changed":
            raise _BoxChanged
        if reply.status != "ok":
            raise await refusal(self._redis, call, reply)
        return BoxResult(
            seq=call.seq,
            op=call.op,
            kind=call.kind,
            box=call.box,
            tube=call.tube or None,
            status=reply.status,
            state=reply.state,
            tubes=reply.tubes,
            samples=reply.samples,
            replayed=reply.replayed,
        )
