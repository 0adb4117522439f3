"""Files that readers may open while they are rewritten."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from pathlib import Path


def replace_parquet(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` whole or not at all.

    The archiver rewrites a round's tables every pass while pages, reports and the
    live figures read them: written in place, a reader could open a half-written
    file ("Invalid thrift"). Written beside it and renamed over it, a reader sees
    the old file or the new one, never part of one.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(frame, pl.LazyFrame):
            frame.sink_parquet(tmp)
        else:
            frame.write_parquet(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
