"""Tests of the binding core; shared helpers for looking at the whole Redis state."""

from __future__ import annotations

from typing import Any

import redis


def _value(r: redis.Redis, key: bytes, kind: bytes) -> Any:
    if kind == b"string":
        return r.get(key)
    if kind == b"hash":
        return sorted(r.hgetall(key).items())
    if kind == b"set":
        return sorted(r.smembers(key))
    if kind == b"list":
        return r.lrange(key, 0, -1)
    if kind == b"zset":
        return r.zrange(key, 0, -1, withscores=True)
    if kind == b"stream":
        return [(i, sorted(f.items())) for i, f in r.xrange(key)]
    raise AssertionError(f"unexpected type {kind!r} of {key!r}")


def snapshot(r: redis.Redis) -> dict[bytes, tuple[bytes, Any]]:
    """Every key with its TYPE and a comparable dump of its value."""
    out: dict[bytes, tuple[bytes, Any]] = {}
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        out[key] = (kind, _value(r, key, kind))
    return out
