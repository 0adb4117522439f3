"""What each refusal of the binding script means, in words a sampler can act on."""

from __future__ import annotations

_HTTP = {
    "round_not_found": 404,
    "tube_not_found": 404,
    "tube_other_site": 403,
    "operation_reused": 422,
    "seq_out_of_range": 400,
}

_TEXT = {
    "round_closed": "This round is closed; no more scans are taken. Ask the command centre "
    "which round is open.",
    "round_not_found": "No such round.",
    "tube_used": "Tube {tube} has been opened before. A barcode is used once: take a new tube.",
    "tube_not_found": "Tube {tube} is not open in this round. Scan the tube barcode first to "
    "open it.",
    "tube_other_site": "Tube {tube} belongs to another sampling site. Use a tube opened here.",
    "tube_closed": "Tube {tube} is closed ({count} samples). Open a new tube.",
    "tube_full": "Tube {tube} is full ({count} samples). Open a new tube for this resident.",
    "tube_empty": "Tube {tube} has no scans yet.",
    "tube_boxed": "Tube {tube} is already in a box; it can no longer change.",
    "resident_already_sampled": "Resident already sampled in this round{detail}. Do not swab "
    "again.",
    "risk_needs_single_tube": "This resident is flagged (yellow/red code or isolation) and must "
    "be sampled alone: open a single tube (capacity 1).",
    "undo_not_last": "Only the last scan of tube {tube} can be undone, and that was another "
    "resident.",
    "resample_without_binding": "A re-sample is only for a resident already sampled in this "
    "round; this resident was not.",
    "seq_out_of_range": "Sequence number out of range: the device's counter jumped too far or "
    "is below 1.",
    "seq_conflict": "This sequence number was already used by a different operation of this "
    "device.",
    "operation_reused": "This operation id was already used with different contents; a retry "
    "must repeat the original request exactly.",
}


def status_http(status: str) -> int:
    return _HTTP.get(status, 409)


def message_for(status: str, *, tube: str, count: int, detail: str = "") -> str:
    text = _TEXT.get(status, status.replace("_", " "))
    return text.format(tube=tube, count=count, detail=(": " + detail) if detail else "")
