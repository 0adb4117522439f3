"""Processes of a load-test run: the API (``sampling serve``) and Locust master and workers.

The embedded Valkey server is started by the CLI itself (``EmbeddedServer``);
the API is started exactly as ``sampling bench binding`` does it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


class Proc:
    """A child process with its output in a log file of the run directory."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log: IO[bytes] = (log_dir / f"{name}.log").open("wb")
        self.popen = subprocess.Popen(
            args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self.log.close()


def start_api(port: int, workers: int, env: dict[str, str], log_dir: Path) -> Proc:
    proc = Proc(
        "api",
        [
            sys.executable,
            "-m",
            "sampling.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env,
        log_dir,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"the API did not start; see {log_dir / 'api.log'}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        time.sleep(0.2)
    proc.stop()
    raise RuntimeError("the API did not become ready in 60 s")


def start_locust(
    host: str, workers: int, run_dir: Path, env: dict[str, str], master_port: int
) -> list[Proc]:
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host]
    master = Proc(
        "locust-master",
        [
            *base,
            "--master",
            "--headless",
            "--expect-workers",
            str(workers),
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--csv",
            str(run_dir / "locust"),
            "--html",
            str(run_dir / "locust.html"),
            "--csv-full-history",
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",
        ],
        env,
        run_dir,
    )
    procs = [master]
    for k in range(workers):
        procs.append(
            Proc(
                f"locust-worker-{k}",
                [
                    *base,
                    "--worker",
                    "--master-host",
                    "127.0.0.1",
                    "--master-port",
                    str(master_port),
                    "--loglevel",
                    "WARNING",
                ],
                env,
                run_dir,
            )
        )
    return procs
