"""Exactly-once operations: the per-device op record every domain script keeps.

Each mutating request from a device carries its sequence number (the device's
counter in the round, from 1) and an operation id. The script keeps 8 bytes per
sequence number in ``{rd:R}:ops:<device>`` (a string; a device's 2,000 scans of a
day cost 16 KB): a 6-byte fingerprint (3 bytes of the op id's hash, 3 of the
payload's), a status index and one aux byte. A retry finds its record and gets
the same answer; the same op id with another payload is ``operation_reused``
(422); another op id at a used sequence number is ``seq_conflict`` (409).
Unused numbers below the highest are the device's gaps.
"""

from __future__ import annotations

import hashlib

RECORD = 8


def _h3(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=3).digest()


def fingerprint(op_id: str, payload: bytes) -> bytes:
    """The 6 bytes a script stores for an operation and compares on retry."""
    return _h3(op_id.encode()) + _h3(payload)
