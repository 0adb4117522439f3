"""The packed tube record that apply.lua writes, read back in Python.

Layout (big-endian): header length (1), state (1: 0 open, 1 closed, 2 boxed),
capacity (1), purpose (1: 0 pool, 1 re-sample), opened at (4, unix seconds),
closed at (4, 0 while open), then ``site\\0device``; after the header one
12-byte member per scan: the resident's 8-byte keyed hash and the scan time (4).
About 12 bytes a resident, against ~100 for a hash per tube.
"""

from __future__ import annotations

import struct

from sampling.binding.models import Tube, TubeMember

_HEADER = struct.Struct(">BBBBII")
_MEMBER = struct.Struct(">8sI")
STATES = ("open", "closed", "boxed")


class TubeRecord:
    __slots__ = (
        "capacity",
        "closed_at",
        "device",
        "members",
        "opened_at",
        "purpose",
        "site",
        "state",
    )

    def __init__(self, raw: bytes) -> None:
        hl, state, self.capacity, purpose, self.opened_at, self.closed_at = _HEADER.unpack_from(raw)
        site, _, device = raw[_HEADER.size : hl].partition(b"\0")
        self.site = site.decode()
        self.device = device.decode()
        self.state = STATES[state]
        self.purpose = "resample" if purpose == 1 else "pool"
        self.members: list[tuple[bytes, int]] = [
            _MEMBER.unpack_from(raw, off) for off in range(hl, len(raw), _MEMBER.size)
        ]

    def view(self, round_id: str, code: str) -> Tube:
        return Tube(
            tube=code,
            round=round_id,
            site=self.site,
            device=self.device,
            state=self.state,  # type: ignore[arg-type]
            purpose=self.purpose,  # type: ignore[arg-type]
            capacity=self.capacity,
            count=len(self.members),
            opened_at=float(self.opened_at),
            closed_at=float(self.closed_at) if self.closed_at else None,
            members=[TubeMember(ref=h.hex()[:8], scanned_at=float(t)) for h, t in self.members],
        )
