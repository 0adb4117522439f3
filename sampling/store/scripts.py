"""Lua scripts as files beside the module that runs them, and the one way to run them.

Each script a service runs has a typed call (:class:`Call`): a small frozen
dataclass in its domain's ``scripts.py`` that names the script's keys and
arguments, lays them out as the ``.lua`` file's header says (:meth:`Call.layout`)
and decodes the reply into named fields (:meth:`Call.decode`). The services and
the script tests build the same calls, so KEYS and ARGV are laid out in one place.

:class:`Runner` runs calls, the same way for every domain:

- EVALSHA, and on NOSCRIPT (a restarted or failed-over server) SCRIPT LOAD and
  once more, so a Redis restart never reaches the client as an error (the one
  place this is written: the lane and the cluster nodes only carry the commands);
- on the multiplexed lane when there is one (a single server's hot path);
- for a call that writes what the durability setting covers (``Call.durable``),
  with ``waitaof``: WAITAOF right after the script on the same connection, one
  round trip, and :class:`~sampling.errors.NotDurable` unless the local AOF fsync
  is confirmed. On a cluster that connection is one to the node that owns the
  call's slot (its first key): a cluster pipeline refuses scripts, and WAITAOF has
  no key to route by, so redis-py would send it to the default node instead.

Only a runner with ``waitaof`` opens clients of its own (to cluster nodes), which
:meth:`Runner.aclose` closes; the services close theirs with the client.
"""

from __future__ import annotations

import contextlib
import hashlib
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sampling.errors import NotDurable, Unavailable

if TYPE_CHECKING:
    from sampling.store.client import AnyRedis
    from sampling.store.lane import Lane

R = TypeVar("R")
#: WAITAOF numlocal=1, numreplicas=0, 1 s: the local AOF fsync is what the service promises.
_WAITAOF = ("WAITAOF", 1, 0, 1000)


@cache
def source(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


@cache
def _sha(package: str, name: str) -> str:
    return hashlib.sha1(source(package, name).encode()).hexdigest()


class Call(Generic[R]):
    """One call of one script: its KEYS and ARGV, and how its reply reads.

    Subclasses are frozen dataclasses; the class names the script file
    (``package``, ``name`` without ``.lua``) and whether its write is one the
    durability setting covers.
    """

    __slots__ = ()
    package: ClassVar[str]
    name: ClassVar[str]
    #: WAITAOF follows it under the ``waitaof`` durability setting.
    durable: ClassVar[bool] = False

    @classmethod
    def source(cls) -> str:
        return source(cls.package, cls.name + ".lua")

    def layout(self) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV, in the order the script's header gives."""
        raise NotImplementedError

    def decode(self, reply: Any) -> R:
        """The script's reply as named fields."""
        raise NotImplementedError


class Runner:
    """Runs typed script calls on one client (and the lane, when there is one)."""

    def __init__(self, redis: AnyRedis, *, waitaof: bool = False, lane: Lane | None = None) -> None:
        self._redis = redis
        self._waitaof = waitaof
        self._lane = lane
        #: Plain clients to cluster nodes, for WAITAOF on the connection that wrote.
        self._nodes: dict[str, Redis] = {}

    @property
    def lane(self) -> Lane | None:
        return self._lane

    async def __call__(self, call: Call[R]) -> R:
        return call.decode(await self.raw(call))

    async def raw(self, call: Call[Any]) -> Any:
        """The script's reply as the server gave it."""
        keys, argv = call.layout()
        durable = self._waitaof and call.durable
        command = ("EVALSHA", _sha(call.package, call.name + ".lua"), len(keys), *keys, *argv)
        if durable and isinstance(self._redis, RedisCluster):
            replies = await self._on_owner(self._redis, call, command, keys[0])
        else:
            replies = await self._loaded(self._redis, call, command, (_WAITAOF,) if durable else ())
        if durable and int(replies[1][0]) < 1:
            raise NotDurable
        return replies[0]

    async def _send(
        self, client: AnyRedis, command: tuple[Any, ...], after: tuple[tuple[Any, ...], ...]
    ) -> list[Any]:
        """The script and the commands ``after`` it, on one connection, in one round trip."""
        if self._lane is not None:
            return await self._lane.execute(command, *after)
        if not after:
            # A cluster client routes it by its first key (and follows a moved slot).
            return [await client.execute_command(*command)]
        return await _pipeline(client, command, *after)

    async def _loaded(
        self, client: AnyRedis, call: Call[Any], command: tuple[Any, ...],
        after: tuple[tuple[Any, ...], ...],
    ) -> list[Any]:  # fmt: skip
        """:meth:`_send`; on NOSCRIPT (a restarted or failed-over server) the script is
        loaded and sent once more."""
        try:
            return await self._send(client, command, after)
        except NoScriptError:
            await client.script_load(call.source())
            return await self._send(client, command, after)

    async def _on_owner(
        self, cluster: RedisCluster, call: Call[Any], command: tuple[Any, ...], key: Any
    ) -> list[Any]:
        """The script and its WAITAOF on the node that owns ``key``'s slot.

        This path never sends through the cluster client, which would learn a new
        owner from its own errors or a MOVED: nothing else tells it. So when the
        node does not answer (perhaps it died and a replica is taking over), the
        slot map is read again and the error goes to the caller, whose retry finds
        the new owner; when the node answers MOVED (a failover it outlived, a
        resharding), it ran nothing, and the script runs once on the new owner.
        """
        node = self._node(cluster, key)
        try:
            return await self._loaded(node, call, command, (_WAITAOF,))
        except (RedisConnectionError, RedisTimeoutError):
            await self._refresh(cluster, node)
            raise
        except MovedError:
            await self._refresh(cluster, node)
        return await self._loaded(self._node(cluster, key), call, command, (_WAITAOF,))

    def _node(self, cluster: RedisCluster, key: Any) -> Redis:
        node = cluster.get_node_from_key(key)
        if node is None:
            raise Unavailable("the cluster has no node for this round's slot; retry shortly")
        client = self._nodes.get(node.name)
        if client is None:
            kw = node.connection_kwargs
            client = self._nodes[node.name] = Redis(
                host=node.host,
                port=int(node.port),
                password=kw.get("password"),
                socket_timeout=kw.get("socket_timeout"),
            )
        return client

    async def _refresh(self, cluster: RedisCluster, client: Redis) -> None:
        """Forget the client of a node that no longer owns the slot, and read the slot
        map again (redis-py coalesces concurrent refreshes; the node is tried last)."""
        name = next((n for n, c in self._nodes.items() if c is client), None)
        if name is not None:  # else a concurrent call has forgotten it already
            del self._nodes[name]
            await client.aclose()
        with contextlib.suppress(RedisError):  # no node answers yet: the next call tries again
            await cluster.nodes_manager.initialize(last_failed_node_name=name)

    async def aclose(self) -> None:
        for client in self._nodes.values():
            await client.aclose()
        self._nodes.clear()


async def _pipeline(client: AnyRedis, *commands: tuple[Any, ...]) -> list[Any]:
    """The commands back to back on one connection, in one round trip."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(await pipe.execute())
