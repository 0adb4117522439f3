"""Settings, read once from ``SAMPLING_*`` environment variables into a frozen object.

Nothing reads the environment at import time: the CLI and the app factory call
:meth:`Settings.from_env` and pass the result down. A bad value stops the
program with a message naming the variable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

from sampling.localtime import zone

if TYPE_CHECKING:
    from collections.abc import Mapping

Durability = Literal["everysec", "always", "waitaof"]
DURABILITIES: tuple[Durability, ...] = ("everysec", "always", "waitaof")


class SettingsError(Exception):
    pass


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    #: ``redis://``, ``rediss://`` or ``unix://`` URL; empty means the embedded server.
    redis_url: str = ""
    #: Treat ``redis_url`` as a Redis Cluster seed node.
    redis_cluster: bool = False
    #: Where the embedded server keeps its AOF, and where the secret, archives and
    #: reports live.
    data_dir: Path = Path(".sampling")
    #: The HMAC key for resident codes (hex). Empty: read or create ``data_dir/secret``.
    secret_hex: str = ""
    #: everysec: fsync once a second (a Redis crash can lose the last second);
    #: always: fsync every write before the reply; waitaof: ask the server with
    #: WAITAOF to confirm the local fsync before the scan is acknowledged.
    durability: Durability = "everysec"
    #: Largest offline batch accepted, in operations.
    max_batch: int = 500
    #: API worker processes for ``sampling serve``.
    workers: int = 2
    host: str = "127.0.0.1"
    port: int = 8000
    #: Requests one device may make per second (token bucket, burst = 2x).
    device_rate: float = 50.0
    #: Seconds a Redis command may take before the request answers 503.
    redis_timeout: float = 2.0
    #: Largest request body, bytes (images have their own limit).
    max_body: int = 2_000_000
    #: Requests one API worker may have in flight; past it, an immediate 503
    #: ``overloaded`` with Retry-After instead of a queue that times out.
    max_inflight: int = 256
    #: Offline batch uploads one API worker may have in flight, apart from (and
    #: never taking room from) ``max_inflight``: a reconnect surge of batches is
    #: turned away with 503 while single scans still get in.
    max_inflight_batches: int = 4
    #: The district's time zone (IANA name): every time shown to a person, in
    #: pages, CLI output and files, is in this zone (``sampling.localtime``).
    tz: str = "Asia/Shanghai"
    #: Run the background archiver in this process (``sampling serve`` sets it
    #: for its workers; one of them leads at a time, by a lease in Redis).
    archiver: bool = False
    #: Seconds between archive passes of every open round.
    archive_every: float = 30.0
    #: Seconds the archiver leader's lease lasts without a renewal; another
    #: worker takes over within two of these after the leader dies.
    archive_lease: float = 15.0
    #: A device silent this many seconds while its round is open is an alarm.
    silent_after: int = 15 * 60
    #: A tube received at the lab this many seconds without a result is an alarm.
    result_after: int = 4 * 60 * 60
    #: A tube open at a sampling point this many seconds is an alarm.
    open_after: int = 60 * 60
    #: Seconds a handheld's clock may run ahead of the server's (or behind the
    #: round's opening) before its operation times are not trusted.
    clock_skew: float = 300.0
    #: Tubes a box holds (``SAMPLING_BOX_CAPACITY``).
    box_capacity: int = 100
    #: Custody overdue limits, seconds (``SAMPLING_BOX_*_MIN`` give minutes): a closed
    #: tube not in a box, a sealed box not picked up, a box in transit, a received box
    #: whose intake is still open.
    box_unboxed_after: int = 30 * 60
    box_pickup_after: int = 60 * 60
    box_transit_after: int = 120 * 60
    box_intake_after: int = 60 * 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get("SAMPLING_" + name, default).strip()

        def number(
            name: str, default: float, kind: type[int] | type[float], what: str = "a number"
        ) -> float:
            raw = get(name, str(default))
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"SAMPLING_{name}={raw!r} is not {what}") from None
            if value <= 0:
                raise SettingsError(f"SAMPLING_{name} must be positive, got {raw}")
            return value

        def whole(name: str, default: int) -> int:
            # Boxing's counts and minutes have always said "whole number".
            return int(number(name, default, int, "a whole number"))

        durability = get("DURABILITY", "everysec")
        if durability not in DURABILITIES:
            raise SettingsError(
                f"SAMPLING_DURABILITY={durability!r}: choose one of {', '.join(DURABILITIES)}"
            )
        url = get("REDIS_URL", "")
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"SAMPLING_REDIS_URL={url!r}: expected redis://, rediss:// or unix://"
            )
        secret = get("SECRET", "")
        if secret:
            try:
                if len(bytes.fromhex(secret)) < 16:
                    raise ValueError
            except ValueError:
                raise SettingsError("SAMPLING_SECRET must be at least 32 hex digits") from None
        tz = get("TZ", "Asia/Shanghai")
        try:
            zone(tz)
        except ValueError as exc:
            raise SettingsError(f"SAMPLING_TZ: {exc}") from None
        return cls(
            redis_url=url,
            redis_cluster=get("REDIS_CLUSTER", "0").lower() in ("1", "true", "yes"),
            data_dir=Path(get("DATA_DIR", ".sampling")),
            secret_hex=secret,
            durability=durability,
            max_batch=int(number("MAX_BATCH", 500, int)),
            workers=int(number("WORKERS", 2, int)),
            host=get("HOST", "127.0.0.1"),
            port=int(number("PORT", 8000, int)),
            device_rate=float(number("DEVICE_RATE", 50.0, float)),
            redis_timeout=float(number("REDIS_TIMEOUT", 2.0, float)),
            max_body=int(number("MAX_BODY", 2_000_000, int)),
            max_inflight=int(number("MAX_INFLIGHT", 256, int)),
            max_inflight_batches=int(number("MAX_INFLIGHT_BATCHES", 4, int)),
            tz=tz,
            archiver=get("ARCHIVER", "0").lower() in ("1", "true", "yes"),
            archive_every=float(number("ARCHIVE_EVERY", 30.0, float)),
            archive_lease=float(number("ARCHIVE_LEASE", 15.0, float)),
            silent_after=int(number("SILENT_MIN", 15, int)) * 60,
            result_after=int(number("RESULT_MIN", 240, int)) * 60,
            open_after=int(number("OPEN_MIN", 60, int)) * 60,
            clock_skew=float(number("CLOCK_SKEW", 300.0, float)),
            box_capacity=whole("BOX_CAPACITY", 100),
            box_unboxed_after=whole("BOX_UNBOXED_MIN", 30) * 60,
            box_pickup_after=whole("BOX_PICKUP_MIN", 60) * 60,
            box_transit_after=whole("BOX_TRANSIT_MIN", 120) * 60,
            box_intake_after=whole("BOX_INTAKE_MIN", 60) * 60,
        )

    def secret(self) -> bytes:
        """The HMAC key: from the setting, else from ``data_dir/secret`` (made once, 0600)."""
        if self.secret_hex:
            return bytes.fromhex(self.secret_hex)
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first; read theirs
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())

    def with_(self, **changes: object) -> Settings:
        return msgspec.structs.replace(self, **changes)
