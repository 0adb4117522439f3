"""``sampling serve`` with several worker processes, for tests that kill one of them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import psutil

from tests.conftest import SECRET

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.store.embedded import EmbeddedServer


def worker_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The worker processes uvicorn spawned under ``proc`` (not the supervisor)."""
    out = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                out.append(child.pid)
    return out


def serve_workers(
    server: EmbeddedServer, data_dir: Path, port: int, *, workers: int = 2, **env: str
) -> subprocess.Popen[bytes]:
    """Start ``sampling serve --workers N`` on ``server``; return once every worker is up.

    ``env`` adds ``SAMPLING_*`` settings; a value of ``""`` removes that variable.
    """
    full = {
        **os.environ,
        "SAMPLING_REDIS_URL": server.url,
        "SAMPLING_DATA_DIR": str(data_dir),
        "SAMPLING_SECRET": SECRET,
    }
    for name, value in env.items():
        if value:
            full[name] = value
        else:
            full.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sampling.cli", "serve", "--port", str(port),
         "--workers", str(workers)],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "sampling serve exited"
        with contextlib.suppress(httpx.TransportError):
            if (
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
                and len(worker_pids(proc)) == workers
            ):
                return proc
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError("sampling serve did not become ready")


def stop_workers(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a person stops it; every process killed if it does not end in 15 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        for pid in worker_pids(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
