"""A custody step's refusal as the error the device gets: its status word, and a
message filled in with what it names (the counts that disagree, the other box, the
addressed lab), looked up after the step changed nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sampling.binding.tube import TubeRecord
from sampling.boxing import keys
from sampling.boxing.messages import message_for, needs, status_http
from sampling.boxing.replies import text_or_none
from sampling.boxing.scripts import BoxHandover, BoxOpen, BoxSeal
from sampling.errors import Refusal
from sampling.store.client import as_bytes

if TYPE_CHECKING:
    from sampling.boxing.scripts import Custody, CustodyReply
    from sampling.store.client import AnyRedis


async def refusal(redis: AnyRedis, call: Custody, reply: CustodyReply) -> Refusal:
    step = call.step
    status, box, tube, round_id = reply.status, step.box, step.tube, step.round_id
    ctx: dict[str, Any] = {
        "box": box,
        "tube": tube,
        "state": reply.state or "not opened",
        "tubes": reply.tubes,
        "samples": reply.samples,
    }
    want = needs(status)
    if "other" in want:
        other = await redis.hget(keys.tube_box(round_id, tube), tube)
        ctx["other"] = text_or_none(other) or "another box"
    if "count" in want:
        raw = await redis.get(keys.tube(round_id, tube))
        ctx["count"] = len(TubeRecord(as_bytes(raw)).members) if raw else 0
    if want & {"lab", "courier"}:
        lab, courier = await redis.hmget(keys.box(round_id, box), ["lab", "courier"])
        ctx["lab"] = text_or_none(lab) or "(none)"
        ctx["courier"] = text_or_none(courier) or "(none)"
    if "asked" in want:
        # The lab asked for: the desk's own for a box addressed elsewhere.
        ctx["asked"] = step.device.lab if status == "wrong_lab" else _asked_lab(call)
    if isinstance(call, BoxSeal) and status in ("tube_count_mismatch", "sample_count_mismatch"):
        ctx["counted_tubes"], ctx["counted_samples"] = call.tubes, call.samples
        ctx["samples_too"] = (
            f" (and {call.samples} samples counted against {reply.samples} bound)"
            if call.samples != reply.samples
            else ""
        )
    return Refusal(
        status,
        message_for(status, **ctx),
        status_http(status),
        box=box,
        tube=tube or None,
        seq=step.seq,
        state=reply.state or None,
        tubes=reply.tubes,
        samples=reply.samples,
    )


def _asked_lab(call: Custody) -> str:
    match call:
        case BoxOpen(lab=lab) | BoxHandover(lab=lab):
            return lab
        case _:
            return ""
