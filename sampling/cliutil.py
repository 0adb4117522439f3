"""What every ``sampling`` command shares: the settings, running against the server,
errors as one line, and the clients and services a command works with.

The root command (``sampling.cli``) mounts the domains' command groups; a domain's
commands import this module, never the root, so nothing imports the root back.
Clients are made here only (:func:`redis_for`, :func:`services_for`), from the
settings, so every command treats ``SAMPLING_REDIS_CLUSTER`` alike.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from sampling.errors import SamplingError
from sampling.settings import Settings, SettingsError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from sampling.api.services import Services
    from sampling.store.client import AnyRedis

T = TypeVar("T")
console = Console(stderr=True)


def settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def run(make: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    """Run ``make(redis_url)`` against the configured or embedded server; errors read well."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from sampling.store.embedded import ServerStartError
    from sampling.store.lock import DirectoryLocked
    from sampling.store.runtime import redis_url

    try:
        with redis_url(settings()) as url:
            return asyncio.run(make(url))
    except SamplingError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    except DirectoryLocked as exc:
        raise locked(exc) from exc
    except ServerStartError as exc:
        raise click.ClickException(f"the embedded Valkey server could not start: {exc}") from exc
    except RedisConnectionError as exc:
        raise click.ClickException(
            f"cannot reach Redis ({exc}); check SAMPLING_REDIS_URL or that the server is up"
        ) from exc


def locked(exc: Exception) -> click.ClickException:
    """The one line for a data directory another process owns."""
    return click.ClickException(
        f"{exc}; stop it first, or set SAMPLING_DATA_DIR to another directory"
    )


def redis_for(url: str) -> AnyRedis:
    """A client of ``url`` (the one :func:`run` passes), made as the settings say: a
    cluster client under ``SAMPLING_REDIS_CLUSTER``, with the command timeout.

    ``async with redis_for(url) as redis:`` closes it.
    """
    from sampling.store.client import from_settings

    return from_settings(settings(), url)


def services_for(url: str) -> Services:
    """The API's services on ``url`` (from :func:`run`); ``async with`` closes them."""
    from sampling.api.services import Services

    return Services.build(settings().with_(redis_url=url))
