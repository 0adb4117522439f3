"""Lua scripts as files beside the module that runs them, registered once per client.

redis-py's registered script runs EVALSHA and, on NOSCRIPT (a restarted or
failed-over server), loads the script and retries, so a Redis restart never
reaches the client as an error.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from sampling.store.client import AnyRedis


@cache
def source(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


class Scripts:
    """The scripts of one domain package, registered on one client."""

    def __init__(self, client: AnyRedis, package: str, names: tuple[str, ...]) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(source(package, name + ".lua")) for name in names
        }

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]

    async def run(self, name: str, keys: list[Any], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)
