"""One-time pairing codes: how a handheld gets its token without anyone typing it.

An admin makes a code for a device (``sampling device pair ID`` or the pairing
page); the code is shown as text and as a QR code, lives ``PAIRING_TTL``
seconds, and only its SHA-256 is kept in Redis. The handheld's page sends the
code once (``POST /v1/pair``, or the page's own form, which puts the token in
the HttpOnly cookie) and gets a fresh token for the device: the old token stops
working, so a device has one live token, and the one the admin saw at creation
never has to leave the admin's screen. ``pair.lua`` consumes the code and
replaces the token digest in one atomic step, so two handhelds racing with the
same code get one token between them.

Codes are 10 Crockford base-32 characters (50 bits), shown as ``ABCDE-FGHJK``;
read back forgivingly (case, dashes, spaces, O for 0, I and L for 1).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import TYPE_CHECKING

import msgspec

from sampling.auth import keys
from sampling.auth.devices import digest
from sampling.auth.models import Device, DeviceCreated
from sampling.auth.scripts import CODE_GONE, PAIRED, Pair
from sampling.errors import AuthError, BadInput
from sampling.schema import Base
from sampling.store.client import as_bytes
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from sampling.auth.devices import Devices
    from sampling.store.client import AnyRedis

PAIRING_TTL = 600
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LENGTH = 10
_READ = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})
_decoder = msgspec.msgpack.Decoder(Device)
_encode = msgspec.msgpack.Encoder().encode


class PairingFailed(AuthError):
    code = "pairing_failed"


class PairingCode(Base, frozen=True):
    device: str
    #: The code as people read it (``ABCDE-FGHJK``); also the QR code's text.
    code: str
    expires_at: float


class PairIn(Base, frozen=True):
    code: str = msgspec.field(default="")


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize(text: str) -> str:
    """The code's canonical form (no dash, upper case), or ``BadInput``."""
    code = text.strip().upper().translate(_READ)
    if len(code) != _LENGTH or any(c not in ALPHABET for c in code):
        raise BadInput(
            "a pairing code has 10 letters and digits, like ABCDE-FGHJK: type it again "
            "or scan its QR code",
            field="code",
        )
    return code


class Pairing:
    def __init__(self, redis: AnyRedis, devices: Devices) -> None:
        self._redis = redis
        self._devices = devices
        self._run = Runner(redis)

    async def create(self, device_id: str, *, now: float | None = None) -> PairingCode:
        """A new code for the device (which must exist and not be revoked)."""
        device = await self._devices.get(device_id)
        if device.revoked:
            raise BadInput(
                f"device {device_id} is revoked; register a new device id", device=device_id
            )
        now = time.time() if now is None else now
        code = "".join(secrets.choice(ALPHABET) for _ in range(_LENGTH))
        await self._redis.set(keys.pairing(_hash(code)), device_id, ex=PAIRING_TTL)
        return PairingCode(
            device=device_id, code=f"{code[:5]}-{code[5:]}", expires_at=now + PAIRING_TTL
        )

    async def exchange(self, text: str) -> DeviceCreated:
        """The device's new token for a valid code; the code is used up."""
        code = normalize(text)
        code_hash = _hash(code)
        key = keys.pairing(code_hash)
        failed = PairingFailed(
            "this pairing code is unknown, already used or expired (codes last 10 minutes "
            "and work once): ask the admin for a new one"
        )
        for _ in range(3):
            device_id = await self._redis.get(key)
            if device_id is None:
                raise failed
            found = await self._redis.hget(keys.DEVICES, device_id)
            if found is None:
                raise failed
            raw = as_bytes(found)
            device = _decoder.decode(raw)
            if device.revoked:
                raise failed
            token = f"{device.id}.{secrets.token_urlsafe(24)}"
            paired = msgspec.structs.replace(device, digest=digest(token))
            got = await self._run(
                Pair(code_hash=code_hash, device=device.id, seen=raw, paired=_encode(paired))
            )
            if got == PAIRED:
                return DeviceCreated(device=paired.public(), token=token)
            if got == CODE_GONE:
                raise failed
        raise failed
