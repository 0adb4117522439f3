"""What each refusal of the custody script means, in words a sealer, courier or lab can act on.

Templates take ``box``, ``tube`` and whatever the service looked up to explain
the refusal (the counts that disagree, the other box, the addressed lab).
"""

from __future__ import annotations

from string import Formatter
from typing import Any

_HTTP = {
    "round_not_found": 404,
    "box_not_found": 404,
    "tube_not_found": 404,
    "box_other_site": 403,
    "tube_other_site": 403,
    "courier_mismatch": 403,
    "wrong_lab": 403,
    "operation_reused": 422,
    "seq_out_of_range": 400,
}

_TEXT = {
    "round_not_found": "No such round.",
    "box_used": "Box {box} has been used before. A box barcode is used once: take a new box.",
    "box_not_found": "Box {box} was not opened in this round. Scan the box barcode to open it.",
    "box_other_site": "Box {box} belongs to another sampling site.",
    "box_sealed": "Box {box} is sealed ({state}); a sealed box never changes.",
    "box_full": "Box {box} is full ({tubes} tubes). Seal it and open a new box.",
    "tube_not_found": "Tube {tube} was never opened in this round: it cannot be boxed. Put it "
    "aside and report it.",
    "tube_other_site": "Tube {tube} was opened at another sampling site; it cannot go into a box "
    "of this site.",
    "tube_open": "Tube {tube} is still open ({count} samples). Close it at the sampling point "
    "before boxing it.",
    "tube_in_box": "Tube {tube} is already in box {other}. A tube goes into one box only.",
    "tube_not_in_box": "Tube {tube} is not in box {box}.",
    "box_empty": "Box {box} has no tubes scanned into it; scan the tubes before sealing.",
    "box_has_open_tube": "Box {box} holds a tube that is not closed; it cannot be sealed. Take "
    "the tube out and close it first.",
    "tube_count_mismatch": "Counted {counted_tubes} tubes, but {tubes} were scanned into box "
    "{box}{samples_too}. Recount the box, scan any tube not scanned, or take out any tube "
    "that is not physically there.",
    "sample_count_mismatch": "Counted {counted_samples} samples, but the {tubes} tubes scanned "
    "into box {box} hold {samples}. Recount the samples against the tube labels.",
    "box_no_lab": "Box {box} has no lab address. Name the lab at sealing or at handover.",
    "lab_mismatch": "Box {box} is addressed to lab {lab}, not {asked}. A sealed box's address "
    "does not change.",
    "box_not_sealed": "Box {box} is not sealed yet; only a sealed box can be handed over or "
    "picked up.",
    "box_already_handed_over": "Box {box} was already handed over to courier {courier}.",
    "box_not_handed_over": "Box {box} has not been handed over by the sampling point yet; the "
    "sealer must record the handover to you first.",
    "courier_mismatch": "Box {box} was handed over to courier {courier}, not to you.",
    "box_already_picked_up": "Box {box} is already {state}: custody only moves forward.",
    "box_not_picked_up": "Box {box} has not been picked up by a courier ({state}).",
    "wrong_lab": "Box {box} is addressed to lab {lab}, not this lab ({asked}). Do not open it: "
    "send it on to {lab}.",
    "box_already_received": "Box {box} was already received ({state}).",
    "box_not_received": "Box {box} has not been received at the desk yet; scan the box first.",
    "intake_closed": "The intake of box {box} is closed; its record no longer changes.",
    "tube_already_scanned": "Tube {tube} was already scanned at the intake of box {box}.",
    "seq_out_of_range": "Sequence number out of range: the device's counter jumped too far or "
    "is below 1.",
    "seq_conflict": "This sequence number was already used by a different operation of this "
    "device.",
    "operation_reused": "This operation id was already used with different contents; a retry "
    "must repeat the original request exactly.",
}


def status_http(status: str) -> int:
    return _HTTP.get(status, 409)


def needs(status: str) -> set[str]:
    """The names a status's message template uses."""
    text = _TEXT.get(status, "")
    return {name for _, name, _, _ in Formatter().parse(text) if name}


def message_for(status: str, **values: Any) -> str:
    text = _TEXT.get(status, status.replace("_", " "))
    return text.format_map(_Default(values))


class _Default(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"
