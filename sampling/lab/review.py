"""Held results resolved: a supervisor's decision on a tube whose results disagree.

A result that disagrees with the stored one is held (``record.lua``), never
applied. A lab supervisor (a ``lab`` device registered with ``supervisor``, for
its own lab's tubes) or an admin sees the stored value and every held one, and
decides: ``keep`` the stored result, take a ``held`` one instead, or ask for a
``retest`` (the tube's result is withdrawn; the lab's next result for it is
stored as new). A reason is required. ``resolve.lua`` applies the decision and
writes its journal entry (``result_resolved``, with the decision, the reason,
the value before and the value after) in one atomic step, so ``sampling audit
tube`` shows who decided what and why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from msgspec import Meta

from sampling import codes
from sampling.codecheck import check_code
from sampling.errors import BadInput, Forbidden, NotFound, Refusal
from sampling.lab import keys, scripts
from sampling.lab.models import LabResult
from sampling.schema import Base
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from sampling.auth.models import Device
    from sampling.store.client import AnyRedis

Decision = Literal["keep", "held", "retest"]
DECISIONS: tuple[Decision, ...] = ("keep", "held", "retest")
Reason = Annotated[str, Meta(min_length=1, max_length=300)]
#: A reason shorter than this says nothing a later reader could check.
MIN_REASON = 4


class HeldValue(Base, frozen=True, kw_only=True):
    #: The packed result: what a decision names to choose this value.
    value: str
    result: LabResult
    received_at: int


class HeldCase(Base, frozen=True, kw_only=True):
    """One tube's conflict: the stored result (``None`` for a re-test pending or an
    orphan's first value) and every value held against it."""

    round: str
    tube: str
    stored: LabResult | None
    stored_value: str
    held: list[HeldValue]


class Resolve(Base, frozen=True, kw_only=True):
    decision: Decision
    reason: Reason
    #: With ``held``: the packed value chosen (``HeldValue.value``).
    value: str = ""
    #: The held values the decision covers and the stored value seen; omitted:
    #: the ones held now. A page sends what it showed, so a value held after the
    #: supervisor looked is not decided unseen.
    held: list[str] | None = None
    stored: str | None = None


class Resolved(Base, frozen=True, kw_only=True):
    round: str
    tube: str
    decision: Decision
    reason: str
    result: LabResult | None
    covered: int


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class Review:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._run = Runner(redis)

    async def case(self, round_id: str, tube: str) -> HeldCase:
        code = check_code(tube, codes.CodeKind.TUBE, "tube")
        if not await self._redis.exists(keys.meta(round_id)):
            raise NotFound(f"no round {round_id}", round=round_id)
        held: list[HeldValue] = []
        async for field, at in self._redis.hscan_iter(keys.review(round_id), match=f"{code}|*"):
            packed = _text(field).partition("|")[2]
            held.append(
                HeldValue(value=packed, result=LabResult.unpack(code, packed), received_at=int(at))
            )
        if not held:
            raise NotFound(f"no result is held for tube {code} in round {round_id}", tube=code)
        held.sort(key=lambda h: (h.received_at, h.value))
        home = keys.result(round_id) if await self._redis.exists(keys.tube(round_id, code)) else (
            keys.orphans(round_id)
        )  # fmt: skip
        raw = await self._redis.hget(home, code)
        stored = "" if raw is None else _text(raw)
        return HeldCase(
            round=round_id,
            tube=code,
            stored=LabResult.unpack(code, stored) if stored else None,
            stored_value=stored,
            held=held,
        )

    async def resolve(
        self, round_id: str, tube: str, decision: Resolve, *, device: Device | None, by: str = ""
    ) -> Resolved:
        """Apply ``decision``; ``device`` None is the operator's CLI (named ``by``)."""
        reason = decision.reason.strip()
        if len(reason) < MIN_REASON:
            raise BadInput(
                "give the reason for the decision (a few words a later reader can check)",
                field="reason",
            )
        found = await self.case(round_id, tube)
        if device is not None:
            may_resolve(device, found)
        covered = decision.held if decision.held is not None else [h.value for h in found.held]
        if not covered:
            raise BadInput("name at least one held value the decision covers", field="held")
        seen = found.stored_value if decision.stored is None else decision.stored
        chosen = {"keep": seen, "retest": ""}.get(decision.decision, decision.value)
        if decision.decision == "keep" and not seen:
            raise BadInput(
                "there is no stored result to keep: choose a held value or ask for a re-test",
                field="decision",
            )
        if decision.decision == "held" and chosen not in covered:
            raise BadInput(
                "choose one of the held values (its 'value' as the held list shows it)",
                field="value",
                choose=covered,
            )
        who = device.id if device is not None else (by or "cli")
        call = scripts.Resolve(round_id=round_id, tube=found.tube, by=who,
                               decision=decision.decision, reason=reason, seen=seen,
                               chosen=chosen, covered=covered)  # fmt: skip
        reply = await self._run(call)
        _raise(reply, round_id, found.tube)
        return Resolved(
            round=round_id,
            tube=found.tube,
            decision=decision.decision,
            reason=reason,
            result=LabResult.unpack(found.tube, chosen) if chosen else None,
            covered=len(covered),
        )


def _raise(reply: scripts.ResolveReply, round_id: str, tube: str) -> None:
    match reply.status:
        case "ok":
            return
        case "round_not_found":
            raise NotFound(f"no round {round_id}", round=round_id)
        case "not_held":
            raise Refusal(
                "result_not_held",
                f"Tube {tube}: the value {reply.value} is no longer held (decided already?). "
                "Reload the held results and decide again.",
                409,
                tube=tube,
            )
        case "result_changed":
            raise Refusal(
                "result_changed",
                f"Tube {tube}: the stored result changed since it was shown. "
                "Reload the held results and decide again.",
                409,
                tube=tube,
            )
        case _:
            raise BadInput(f"the decision does not fit tube {tube}'s results", tube=tube)


def may_resolve(device: Device, case: HeldCase) -> None:
    """An admin resolves any held result; a lab device only with ``supervisor``, and
    only for tubes whose stored or held values came from its own lab."""
    if device.role == "admin":
        return
    if device.role != "lab" or not device.supervisor:
        raise Forbidden(
            "only a lab supervisor (or an admin) resolves held results", role=device.role
        )
    labs = {h.result.lab for h in case.held} | ({case.stored.lab} if case.stored else set())
    if device.lab and device.lab not in labs:
        raise Forbidden(
            f"tube {case.tube}'s results come from {', '.join(sorted(labs))}, "
            f"not from this supervisor's lab {device.lab}",
            tube=case.tube,
        )
