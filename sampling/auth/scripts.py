"""The auth package's script call: its keys and arguments, and its reply.

KEYS and ARGV are laid out here and only here, as ``pair.lua``'s header says;
:class:`~sampling.store.scripts.Runner` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sampling.auth import keys
from sampling.store.scripts import Call

#: pair.lua's answers.
PAIRED, CODE_GONE, DEVICE_CHANGED = 1, 0, -1


@dataclass(frozen=True, slots=True, kw_only=True)
class Pair(Call[int]):
    """pair.lua: use up a pairing code and give its device a new token digest.

    Answers :data:`PAIRED`, :data:`CODE_GONE` (used, expired or never made) or
    :data:`DEVICE_CHANGED` (the record changed since it was read; nothing written).
    """

    package = "sampling.auth"
    name = "pair"

    #: SHA-256 (hex) of the code.
    code_hash: str
    device: str
    #: The device's record as the caller read it (msgpack ``Device``).
    seen: bytes
    #: The record with the new token's digest.
    paired: bytes

    def layout(self) -> tuple[list[Any], list[Any]]:
        return [keys.pairing(self.code_hash), keys.DEVICES], [self.device, self.seen, self.paired]

    def decode(self, reply: Any) -> int:
        return int(reply)
