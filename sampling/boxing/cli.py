"""``sampling boxes``: custody timelines, overdue lists, box manifests and discrepancies.

Read-only commands against the configured (or embedded) server; each prints a
table, or JSON with ``--json``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
import msgspec
from rich.console import Console
from rich.table import Table

from sampling.boxing.manifest import as_json, pdf

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sampling.boxing.service import Boxer

T = TypeVar("T")
_ROUND = click.option("--round", "round_id", required=True, help="Round id.")
_ALARMS = ("unboxed", "sealed", "transit", "intake", "open", "result")
_JSON = click.option("--json", "as_json_", is_flag=True, help="Print JSON instead of a table.")


def _when(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _with_boxer(work: Callable[[Boxer], Awaitable[T]]) -> T:
    from sampling.cli import run, services_for

    async def go(url: str) -> T:
        svc = services_for(url)
        try:
            return await work(svc.boxer)
        finally:
            await svc.close()

    return run(go)


def _echo_json(obj: object) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(obj), indent=2).decode())


@click.group()
def boxes() -> None:
    """Boxes and chain of custody: timelines, overdue lists, manifests."""


@boxes.command()
@click.argument("code")
@_ROUND
@_JSON
def timeline(code: str, round_id: str, as_json_: bool) -> None:
    """The custody timeline of a box (B...) or a tube (T...)."""
    found = _with_boxer(lambda b: b.timeline(round_id, code))
    if as_json_:
        _echo_json(found)
        return
    table = Table("time", "event", "by", "where", "detail", title=f"{found.kind} {found.code}")
    for e in found.events:
        table.add_row(_when(e.at), e.event, e.by or "", e.place or "", e.detail or "")
    Console().print(table)


@boxes.command()
@_ROUND
@click.option("--unboxed", type=int, help="Minutes a closed tube may wait for a box.")
@click.option("--sealed", type=int, help="Minutes a sealed box may wait for its courier.")
@click.option("--transit", type=int, help="Minutes a box may be in transit.")
@click.option("--intake", type=int, help="Minutes a received box may wait for intake.")
@click.option("--open", "open_", type=int, help="Minutes a tube may stay open at a point.")
@click.option("--result", type=float, help="Hours a received tube may wait for its result.")
@_JSON
def overdue(
    round_id: str,
    unboxed: int | None,
    sealed: int | None,
    transit: int | None,
    intake: int | None,
    open_: int | None,
    result: float | None,
    as_json_: bool,
) -> None:
    """What is late: tubes not boxed, boxes not picked up, in transit, intake open,
    tubes left open, tubes received without a result."""
    given = {"unboxed": unboxed, "sealed": sealed, "transit": transit, "intake": intake,
             "open": open_}  # fmt: skip
    limits = {k: v * 60 for k, v in given.items() if v is not None}
    if result is not None:
        limits["result"] = round(result * 3600)
    found = _with_boxer(lambda b: b.overdue(round_id, limits))
    if as_json_:
        _echo_json(found)
        return
    table = Table("alarm", "code", "since", "minutes", "site", "lab", title=f"round {round_id}")
    for which in _ALARMS:
        for late in getattr(found, which):
            table.add_row(
                which,
                late.code,
                _when(late.since),
                f"{late.minutes:.0f}",
                late.site or "",
                late.lab or "",
            )
    Console().print(table)
    total = sum(len(getattr(found, w)) for w in _ALARMS)
    click.echo(f"{total} overdue")


@boxes.command()
@click.argument("box")
@_ROUND
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, path_type=Path))
def manifest(box: str, round_id: str, pdf_path: Path | None) -> None:
    """A sealed box's manifest as JSON; --pdf FILE also writes the printable sheet."""
    found = _with_boxer(lambda b: b.manifest(round_id, box))
    click.echo(as_json(found).decode())
    if pdf_path is not None:
        from sampling.cli import settings

        pdf_path.write_bytes(pdf(found, settings().tz))
        click.echo(f"wrote {pdf_path}", err=True)


@boxes.command()
@click.argument("box")
@_ROUND
def discrepancies(box: str, round_id: str) -> None:
    """Missing, extra and damaged tubes of a received box (JSON)."""
    _echo_json(_with_boxer(lambda b: b.discrepancies(round_id, box)))


@boxes.command(name="show")
@click.argument("box")
@_ROUND
def show(box: str, round_id: str) -> None:
    """A box's state, custody and contents (JSON)."""
    _echo_json(_with_boxer(lambda b: b.box(round_id, box)))
