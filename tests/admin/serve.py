"""``sampling serve`` and other ``sampling`` commands as separate processes, as people run them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from sampling.store.embedded import free_port
from tests.conftest import SECRET

if TYPE_CHECKING:
    from collections.abc import Iterator

SAMPLING = [sys.executable, "-m", "sampling.cli"]


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAMPLING_")}
    env |= {"SAMPLING_DATA_DIR": str(data_dir), "SAMPLING_SECRET": SECRET, "COLUMNS": "200"}
    return env | extra


def sampling(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one ``sampling`` command to its end; its output as text."""
    return subprocess.run(
        [*SAMPLING, *args],
        env=env_for(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SAMPLING, "serve", "--port", str(port), "--workers", "1"],
        env=env_for(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen[str], port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()}")  # type: ignore[union-attr]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError("serve did not become ready")


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop the process (SIGTERM, then SIGKILL after 30 s) and close its pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@contextlib.contextmanager
def serving(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A running ``sampling serve`` on ``data_dir`` and its port; stopped after."""
    port = free_port()
    proc = start_serve(data_dir, port)
    try:
        wait_ready(proc, port)
        yield proc, port
    finally:
        stop(proc)
