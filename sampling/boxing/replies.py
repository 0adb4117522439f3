"""Redis replies as Python values.

The clients never decode (resident hashes are binary), so replies are bytes; redis-py
types them as bytes or str, and these accept both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import Mapping

Reply = bytes | str


def text(raw: Reply) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def text_or_none(raw: Reply | None) -> str | None:
    return None if raw is None else text(raw)


def seconds(raw: Reply | None) -> float | None:
    """A time stored in milliseconds, as unix seconds."""
    return None if raw is None else int(raw) / 1000


def fields(raw: Mapping[Reply, Reply]) -> dict[str, Reply]:
    """A hash's fields by name."""
    return {text(k): v for k, v in raw.items()}


def scored(raw: object) -> list[tuple[str, float]]:
    """A sorted set's members with their scores (a ``WITHSCORES`` reply)."""
    # redis-py types the reply for every option of the command at once.
    return [(text(m), float(s)) for m, s in cast("list[tuple[Reply, float]]", raw)]


def stream_entries(raw: object) -> list[tuple[str, dict[bytes, bytes]]]:
    """A stream range's entries: id, and fields as the client gave them (bytes)."""
    return [(text(i), f) for i, f in cast("list[tuple[Reply, dict[bytes, bytes]]]", raw or [])]
