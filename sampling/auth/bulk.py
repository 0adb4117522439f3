"""Devices registered in bulk: a round's thousands of handhelds in a few calls.

One call is all or nothing. Every row is checked before anything is written: a
bad row is a 4xx naming it as ``devices[i]`` (0-based, the path a schema error
names too). The records and one admin journal entry for the call are then
written by one script (``admin_bulk.lua``), which refuses the lot if any record
changed since it was read; the call then reads and decides again.

A retry must give the same tokens back, yet only tokens' digests are stored.
So a bulk token is not random: it is ``<device id>.<HMAC(K, op, device id)>``,
where ``K`` is derived from the server's secret and ``op`` is the call's id,
which the caller holds and the server never stores (not even in the journal).
Neither the secret alone nor an op alone gives a token. A row whose device
already exists with the same details and the token this op derives is
``unchanged``; an existing device with other details or another token is a
409 naming the row, and nothing is written. A retry that finds every row
already there journals nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import msgspec

from sampling import adminlog
from sampling.adminlog import OnceEach, Registry
from sampling.auth import keys
from sampling.auth.devices import digest, role_mismatch
from sampling.auth.models import Device, DeviceCreated, DeviceIn, DevicesCreated, DevicesIn
from sampling.errors import BadInput, Conflict

if TYPE_CHECKING:
    from sampling.store.client import AnyRedis

_decoder = msgspec.msgpack.Decoder(Device)
_encode = msgspec.msgpack.Encoder().encode
#: A record can change between the read and the script (another admin call); then
#: the call decides again, this many times at most.
_ATTEMPTS = 5


def token_key(secret: bytes) -> bytes:
    """The key bulk tokens are made with: the server's secret, bound to this one use."""
    return hmac.digest(secret, b"sampling bulk device tokens", hashlib.sha256)


def bulk_token(key: bytes, op: str, device_id: str) -> str:
    """The token of ``device_id`` registered by the call ``op``: 192 bits, like a random one."""
    mac = hmac.digest(key, f"{op}\x00{device_id}".encode(), hashlib.sha256)[:24]
    return f"{device_id}.{base64.urlsafe_b64encode(mac).decode()}"


def _check(rows: list[DeviceIn]) -> None:
    """Every row's own rules, before anything is read or written."""
    once = OnceEach("devices", "device")
    for i, spec in enumerate(rows):
        why = role_mismatch(spec)
        if why:
            raise BadInput(
                f"devices[{i}] ({spec.id}): {why}", index=i, device=spec.id, role=spec.role
            )
        once(i, spec.id)


def _details(spec: DeviceIn) -> dict[str, Any]:
    """The record's fields a row gives: every field of ``DeviceIn`` the record has too,
    so a field added to both is carried (and compared) here without a change."""
    found = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in msgspec.structs.asdict(spec).items()
        if name in Device.__struct_fields__
    }
    # Stored as Devices.create stores them: sorted, each once.
    found["communities"] = tuple(sorted(set(spec.communities)))
    return found


def _same(found: Device, spec: DeviceIn, token_digest: str) -> bool:
    """``found`` is what registering ``spec`` with this token made (a retry's row)."""
    # Expiry is stored as a time; (created + n) - created is n to within rounding.
    expiry = found.expires_at - found.created_at if found.expires_at else 0.0
    return (
        not found.revoked
        and hmac.compare_digest(found.digest, token_digest)
        and all(getattr(found, k) == v for k, v in _details(spec).items())
        and abs(expiry - (spec.expires_in or 0)) < 0.01
    )


async def create_many(
    redis: AnyRedis, secret: bytes, spec: DevicesIn, *, by: str = "", now: float | None = None
) -> DevicesCreated:
    """Register every device of ``spec`` or none; see the module's docstring."""
    _check(spec.devices)
    key = token_key(secret)
    tokens = [bulk_token(key, spec.op, d.id) for d in spec.devices]
    digests = [digest(t) for t in tokens]
    registry = Registry(redis)
    ids = [d.id for d in spec.devices]
    for _ in range(_ATTEMPTS):
        now_ = time.time() if now is None else now
        seen = await registry.read_many(keys.DEVICES, ids)
        rows: list[tuple[str, bytes | None, bytes | None]] = []
        out: list[Device] = []
        created: list[DeviceIn] = []
        for i, (d, raw, token_digest) in enumerate(zip(spec.devices, seen, digests, strict=True)):
            if raw is not None:
                found = _decoder.decode(raw)
                if not _same(found, d, token_digest):
                    raise Conflict(
                        f"devices[{i}]: device {d.id} already exists"
                        + (" and is revoked" if found.revoked else "")
                        + "; register a new id (nothing in this call was registered)",
                        index=i,
                        device=d.id,
                    )
                rows.append((d.id, raw, None))
                out.append(found)
                continue
            device = Device(
                **_details(d),
                digest=token_digest,
                created_at=now_,
                expires_at=now_ + d.expires_in if d.expires_in else 0.0,
            )
            rows.append((d.id, None, _encode(device)))
            out.append(device)
            created.append(d)
        journal = None
        if created:
            roles = Counter(d.role for d in created)
            journal = adminlog.entry(
                "device_bulk",
                by,
                n=len(rows),
                created=len(created),
                unchanged=len(rows) - len(created),
                roles=",".join(f"{r}:{c}" for r, c in sorted(roles.items())),
                ids=",".join(d.id for d in created),
            )
        if await registry.write_many(keys.DEVICES, rows, journal) == 0:
            return DevicesCreated(
                created=len(created),
                unchanged=len(rows) - len(created),
                devices=[
                    DeviceCreated(device=d.public(), token=t)
                    for d, t in zip(out, tokens, strict=True)
                ],
            )
    raise Conflict(
        "the devices kept changing while this call was checked; try again",
        attempts=_ATTEMPTS,
    )
