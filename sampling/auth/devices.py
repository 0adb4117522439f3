"""The device registry: create, look up, revoke, authenticate.

Tokens are ``<device id>.<random>``; only their SHA-256 is stored. A token is
random with 192 bits, so a plain hash (no salt, no slow KDF) is enough: there is
no dictionary to attack.

Authentication reads the device record on every request, except on the scan hot
path (``cached=True``), where a record may be up to ``CACHE_SECONDS`` old; that
is safe because the only change a device record sees is revocation, and the
binding script checks the round's revoked set itself, in the same atomic step.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING

import msgspec

from sampling import adminlog
from sampling.adminlog import Registry
from sampling.auth import keys
from sampling.auth.models import Device, DeviceCreated, DeviceIn
from sampling.errors import AuthError, BadInput, Conflict, NotFound
from sampling.store.client import as_bytes

if TYPE_CHECKING:
    from sampling.store.client import AnyRedis

CACHE_SECONDS = 30.0
_decoder = msgspec.msgpack.Decoder(Device)
_encode = msgspec.msgpack.Encoder().encode


def _decode(raw: bytes | str) -> Device:
    return _decoder.decode(as_bytes(raw))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def role_mismatch(spec: DeviceIn) -> str | None:
    """Why ``spec`` gives a field its role does not have, or None (one rule for
    single and bulk registration)."""
    if spec.supervisor and spec.role != "lab":
        return "only a lab device can be a supervisor"
    if spec.communities and spec.role != "registrar":
        # A registrar without communities is allowed: it may change none.
        return "only a registrar device names communities"
    return None


class Devices:
    def __init__(self, redis: AnyRedis, round_keys: RevokedFanout | None = None) -> None:
        self._redis = redis
        self._cache: dict[str, tuple[Device, float]] = {}
        self._fanout = round_keys
        self._registry = Registry(redis)

    async def create(
        self, spec: DeviceIn, *, now: float | None = None, by: str = ""
    ) -> DeviceCreated:
        why = role_mismatch(spec)
        if why:
            raise BadInput(why, role=spec.role)
        now = time.time() if now is None else now
        token = f"{spec.id}.{secrets.token_urlsafe(24)}"
        device = Device(
            id=spec.id,
            role=spec.role,
            site=spec.site,
            lab=spec.lab,
            grid=spec.grid,
            supervisor=spec.supervisor,
            communities=tuple(sorted(set(spec.communities))),
            digest=digest(token),
            created_at=now,
            expires_at=now + spec.expires_in if spec.expires_in else 0.0,
        )
        journal = adminlog.entry(
            "device_create",
            by,
            device=spec.id,
            role=spec.role,
            site=spec.site,
            lab=spec.lab,
            grid=spec.grid,
            supervisor="yes" if spec.supervisor else None,
            communities=",".join(sorted(set(spec.communities))),
            expires_at=int(device.expires_at) or None,
        )
        if not await self._registry.write(
            keys.DEVICES, spec.id, _encode(device), new=True, journal=journal
        ):
            raise Conflict(
                f"device {spec.id} already exists; revoke it and register a new id", device=spec.id
            )
        return DeviceCreated(device=device.public(), token=token)

    async def get(self, device_id: str) -> Device:
        raw = await self._redis.hget(keys.DEVICES, device_id)
        if raw is None:
            raise NotFound(f"no device {device_id}", device=device_id)
        return _decode(raw)

    async def all(self) -> list[Device]:
        raw = await self._redis.hgetall(keys.DEVICES)
        return sorted((_decode(v) for v in raw.values()), key=lambda d: d.id)

    async def revoke(self, device_id: str, *, by: str = "", reason: str = "") -> Device:
        device = await self.get(device_id)
        revoked = msgspec.structs.replace(device, revoked=True)
        # The global set, the record and the journal entry first, in one step; then
        # the rounds' copies. A round created at this moment either copies the
        # global set after this step or is listed before the fan-out reads the
        # list (Rounds.create), so no round misses the revocation.
        await self._registry.write(
            keys.DEVICES,
            device_id,
            _encode(revoked),
            new=False,
            journal=adminlog.entry("device_revoke", by, device=device_id, reason=reason),
            also_set=keys.REVOKED,
        )
        if self._fanout is not None:
            await self._fanout.revoke(device_id)
        self._cache.clear()
        return revoked

    async def authenticate(self, token: str, *, cached: bool = False) -> Device:
        device_id, dot, _ = token.partition(".")
        if not dot or not device_id:
            raise AuthError("malformed token: expected <device>.<secret>")
        token_digest = digest(token)
        now = time.monotonic()
        hit = self._cache.get(token_digest) if cached else None
        if hit is not None and now - hit[1] < CACHE_SECONDS:
            device = hit[0]
        else:
            raw = await self._redis.hget(keys.DEVICES, device_id)
            if raw is None:
                raise AuthError("unknown token")
            device = _decode(raw)
            if not hmac.compare_digest(device.digest, token_digest):
                raise AuthError("unknown token")
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[token_digest] = (device, now)
        if device.revoked:
            raise AuthError("this device's token was revoked; ask the district admin for a new one")
        if device.expires_at and time.time() > device.expires_at:
            raise AuthError("this device's token has expired; ask the district admin for a new one")
        return device


class RevokedFanout:
    """Copies a revocation into every round's ``revoked`` set (binding owns those keys)."""

    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis

    async def revoke(self, device_id: str) -> None:
        from sampling.binding import keys as bkeys

        for round_id in await self._redis.hkeys(bkeys.ROUNDS):
            await self._redis.sadd(bkeys.revoked(as_bytes(round_id).decode()), device_id)
