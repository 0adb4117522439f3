"""The ledger: every answer the service gave, one JSON line per operation.

Each Locust process appends to its own file (``ledger/ledger-w<k>-<pid>.jsonl``),
so writers never share a file. Fields:

``d`` device, ``seq``, ``op`` (operation id), ``k`` kind (open, scan, undo,
close; add, seal, ... for boxing), ``t`` tube, ``b`` box, ``r`` resident code,
``s`` status (``ok`` or the refusal code; ``unknown`` when no answer ever came),
``n`` count after the operation, ``rp`` the answer was a replay, ``a`` attempts,
``lost`` how many attempts got no answer at all (timeouts, dropped connections),
``shed`` how many were turned away with 429/503, ``up`` which upload of an
offline batch (1 first, 2 the deliberate second upload).
"""

from __future__ import annotations

import json
import os
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


class Ledger:
    def __init__(self, directory: Path, worker: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"ledger-w{worker}-{os.getpid()}.jsonl"
        self._file: IO[str] = self.path.open("a", encoding="utf-8", buffering=1 << 20)
        self.lines = 0

    def write(self, **entry: Any) -> None:
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self.lines += 1

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()
