"""Keyed hashing of resident codes (DESIGN.md invariant 8).

A resident code never reaches Redis or a log: the core keeps the first 8 bytes
of HMAC-SHA256(secret, code). Without the server's secret the stored values
cannot be tested against a dictionary of citizen IDs, and 64 bits keep the chance
of two residents of a 12.6-million city sharing a hash below 1 in 100,000
(n^2 / 2^65); the register import checks for such a pair all the same.
"""

from __future__ import annotations

import hashlib
import hmac

from sampling.codes import normalize

HASH_BYTES = 8


class ResidentHasher:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the resident-hash secret must be at least 16 bytes")
        self._key = secret

    def digest(self, code: str) -> bytes:
        return hmac.digest(self._key, normalize(code).encode(), hashlib.sha256)[:HASH_BYTES]

    def hex(self, code: str) -> str:
        return self.digest(code).hex()
