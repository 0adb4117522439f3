"""One owner per data directory: an exclusive ``flock`` on ``<data dir>/lock``.

Whoever starts the embedded server on a data directory (``sampling serve``, an
admin command with no server running, the demo) takes this lock first, before it
touches any file there, and holds it until its server has stopped. The lock file
holds the owner's pid and command, so a second owner is told in one line who
has the directory, and leaves it alone: two Valkey servers on one AOF, or a
second ``serve`` deleting the first one's socket, cannot happen.

``flock`` is released by the kernel when its holder dies, however it dies, so a
crashed ``serve`` never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

LOCK_NAME = "lock"


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})" if self.pid else "another process"

    @property
    def serving(self) -> bool:
        """True when the holder is a ``serve``: its server stays up for others to use."""
        words = self.command.split()
        return len(words) > 1 and words[1] == "serve"


class DirectoryLocked(RuntimeError):
    """The data directory is owned by another process."""

    def __init__(self, directory: Path, holder: Holder) -> None:
        self.directory = directory
        self.holder = holder
        super().__init__(f"data directory {directory} is in use by {holder}")


def this_command() -> str:
    """How this process was started, as a person would type it (``sampling serve --port 1``)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name in ("cli.py", "__main__.py"):  # python -m sampling.cli
        name = "sampling"
    return " ".join([name, *sys.argv[1:]])[:200]


def holder_of(directory: Path) -> Holder:
    """Who holds the lock on ``directory``, from what the holder wrote into the lock file."""
    # The holder writes its line just after taking the lock: read again briefly
    # if we catch it in between.
    for _ in range(20):
        try:
            text = (directory / LOCK_NAME).read_text().strip()
        except OSError:
            text = ""
        pid, _, command = text.partition(" ")
        if pid.isdecimal():
            return Holder(int(pid), command)
        time.sleep(0.01)
    return Holder(0, "")


class DataDirLock:
    """The exclusive lock on one data directory; a context manager.

    :meth:`acquire` raises :class:`DirectoryLocked` at once when another process
    holds it, or, with ``wait``, waits up to that many seconds for it first.
    """

    def __init__(self, directory: Path, command: str | None = None) -> None:
        self.directory = directory
        self.command = command or this_command()
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.directory / LOCK_NAME

    def acquire(self, wait: float = 0.0) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DirectoryLocked(self.directory, holder_of(self.directory)) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.command}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None

    def __enter__(self) -> Self:
        return self if self._fd is not None else self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
