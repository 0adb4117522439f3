"""The live package's script call: its keys and arguments, and its reply.

KEYS and ARGV are laid out here and only here, as ``lease.lua``'s header says;
:class:`~sampling.store.scripts.Runner` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sampling.store.scripts import Call


@dataclass(frozen=True, slots=True)
class KeepLease(Call[bool]):
    """lease.lua: renew (or, with ``ttl_ms`` 0, release) a lease this holder holds.

    Answers True when this holder held it.
    """

    package = "sampling.live"
    name = "lease"

    #: ``live.keys.LEASE`` or a round's ``archive_lock``.
    key: str
    holder: str
    #: The lease length; 0 releases it.
    ttl_ms: int

    def layout(self) -> tuple[list[Any], list[Any]]:
        return [self.key], [self.holder, self.ttl_ms]

    def decode(self, reply: Any) -> bool:
        return bool(int(reply))
