"""Run a typed script call (``sampling.*.scripts``) on a sync client (server or cluster).

The script tests build the very calls the services run, so KEYS and ARGV are laid
out in one place; this runs one as a registered script (EVALSHA, loading it when
the server lacks it), as the services' runner does.
"""

from __future__ import annotations

from typing import Any, TypeVar

import redis

from sampling.store.scripts import Call

R = TypeVar("R")


def raw(r: redis.Redis | redis.RedisCluster, call: Call[Any]) -> Any:
    """The script's reply as the server gave it."""
    keys, argv = call.layout()
    return r.register_script(call.source())(keys=keys, args=argv)


def run(r: redis.Redis | redis.RedisCluster, call: Call[R]) -> R:
    """The script's reply, decoded by its call."""
    return call.decode(raw(r, call))
