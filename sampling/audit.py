"""``sampling audit``: the history of a tube, a box or a resident, from the journal.

The journal is every accepted change of a round, in order: the live stream
``{rd:R}:journal`` and the Parquet parts the archiver already moved out of it
(``<data_dir>/archive/<round>/journal/``). An audit reads both, keeps the entries
about the thing asked for, and shows who (device and its role), when, where
(site, or lab) and what.

A resident is looked up by code, hashed on the way in with the server's secret,
so the code is never sent to Redis nor written anywhere; the output names the
resident only by the first 8 hex digits of the keyed hash, as the API does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from sampling import codes
from sampling.binding import keys

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.store.client import AnyRedis

KINDS = ("tube", "box", "resident")
#: Journal fields shown as "what" besides the kind of change, when present.
_DETAIL = (
    "x",
    "decision",
    "outcome",
    "ct_orf1ab",
    "ct_n",
    "condition",
    "reason",
    "courier",
    "place",
    "tested_at",
    "was",
    "held",
)
_CHUNK = 10_000


@dataclass(frozen=True)
class Event:
    id: str
    at: float
    kind: str
    device: str
    role: str
    site: str
    tube: str
    box: str
    seq: str
    op: str
    resident: str
    detail: str

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.at).isoformat(sep=" ", timespec="milliseconds")


def _matches(fields: dict[str, Any], kind: str, value: str) -> bool:
    if kind == "resident":
        return fields.get("r") == value
    return fields.get(kind) == value


def _event(sid: str, f: dict[str, Any], roles: dict[str, str]) -> Event:
    device = f.get("d") or ""
    detail = ", ".join(f"{k}={f[k]}" for k in _DETAIL if f.get(k) not in (None, ""))
    where = f.get("site") or f.get("lab") or ""
    return Event(
        id=sid,
        at=int(sid.partition("-")[0]) / 1000,
        kind=f.get("k") or "",
        device=device,
        role=roles.get(device, "?"),
        site=where,
        tube=f.get("tube") or "",
        box=f.get("box") or "",
        seq=str(f.get("seq") or ""),
        op=f.get("op") or "",
        resident=(f.get("r") or "")[:8],
        detail=detail,
    )


def _order(sid: str) -> tuple[int, int]:
    ms, _, n = sid.partition("-")
    return int(ms), int(n or 0)


async def _roles(redis: AnyRedis) -> dict[str, str]:
    from sampling.auth.devices import Devices

    return {d.id: d.role for d in await Devices(redis).all()}


async def _live(
    redis: AnyRedis, round_id: str, kind: str, value: str
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    start = "-"
    stream = keys.journal(round_id)
    while True:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(
            stream, min=start, count=_CHUNK
        )  # type: ignore[assignment]
        for sid, raw in entries:
            f = {k.decode(): (v.hex() if k == b"r" else v.decode()) for k, v in raw.items()}
            if _matches(f, kind, value):
                out.append((sid.decode(), f))
        if len(entries) < _CHUNK:
            return out
        start = "(" + entries[-1][0].decode()


def _archived(
    data_dir: Path, round_id: str, kind: str, value: str
) -> list[tuple[str, dict[str, Any]]]:
    import polars as pl

    from sampling import archive

    frame = archive.journal(data_dir, round_id)
    column = "r" if kind == "resident" else kind
    if column not in frame.collect_schema().names():
        return []
    rows = frame.filter(pl.col(column) == value).collect().to_dicts()
    return [(str(row["id"]), row) for row in rows]


async def history(
    redis: AnyRedis, data_dir: Path, round_id: str, kind: str, value: str
) -> list[Event]:
    """Every journal entry about ``value`` (a tube or box code, or a resident's hash in hex),
    archived and live, oldest first. An entry archived and not yet trimmed shows once."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    found = dict(_archived(data_dir, round_id, kind, value))
    found.update(await _live(redis, round_id, kind, value))
    roles = await _roles(redis)
    return [_event(sid, found[sid], roles) for sid in sorted(found, key=_order)]


def _canonical(kind: str, code: str, secret: bytes) -> str:
    from sampling.binding.service import check_code
    from sampling.privacy import ResidentHasher

    if kind == "resident":
        return ResidentHasher(secret).hex(check_code(code, codes.CodeKind.RESIDENT, "resident"))
    return check_code(code, codes.CodeKind.TUBE if kind == "tube" else codes.CodeKind.BOX, kind)


@click.command(name="audit")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("code")
@click.option("--round", "round_id", required=True, help="The round to look in.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_command(kind: str, code: str, round_id: str, as_json: bool) -> None:
    """Show the history of a tube, a box or a resident: who, when, where, what.

    A resident is given by code; it is hashed with the server's secret before the
    lookup, and shown only by the first 8 hex digits of that hash.
    """
    from rich.console import Console
    from rich.table import Table

    from sampling.cli import run, settings
    from sampling.store.client import connect

    cfg = settings()
    value = _canonical(kind, code, cfg.secret())

    async def go(url: str) -> list[Event]:
        redis = connect(url, cluster=cfg.redis_cluster, timeout=cfg.redis_timeout)
        try:
            return await history(redis, cfg.data_dir, round_id, kind, value)
        finally:
            await redis.aclose()

    events = run(go)
    if as_json:
        for e in events:
            click.echo(json.dumps(asdict(e) | {"when": e.when}, ensure_ascii=False))
        return
    shown = value[:8] if kind == "resident" else value
    table = Table(title=f"{kind} {shown} in round {round_id}: {len(events)} entries")
    for column in ("when", "what", "device", "role", "where", "tube", "box", "resident", "detail"):
        table.add_column(column)
    for e in events:
        table.add_row(e.when, e.kind, e.device, e.role, e.site, e.tube, e.box, e.resident, e.detail)
    Console().print(table)
