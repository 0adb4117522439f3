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
from typing import TYPE_CHECKING, Any

import click

from sampling import adminlog, codes, localtime
from sampling.binding import keys
from sampling.lab.models import LabResult

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.store.client import AnyRedis

KINDS = ("tube", "box", "resident")
#: What each journal kind means, in words.
WHAT = {
    "open": "tube opened",
    "scan": "resident scanned",
    "undo": "scan undone",
    "close": "tube closed",
    "box_open": "box opened",
    "box_add": "tube boxed",
    "box_remove": "tube taken out",
    "box_seal": "box sealed",
    "box_handover": "handed to courier",
    "box_pickup": "picked up",
    "box_receive": "received at lab",
    "intake": "tube checked in",
    "missing": "tube missing at intake",
    "intake_close": "intake closed",
    "result": "result",
    "round_create": "round created",
    "round_close": "round closed",
    "risk": "risk flags set",
}
_FLAGS = {"Y": "yellow code", "R": "red code", "I": "isolation"}
_SOURCES = {"register": "from the register", "manual": "set by hand"}
_WHERE = {"other_box": "listed in another box", "unboxed": "not boxed", "unbound": "never bound"}
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
    #: ``at`` in the district's time zone, as people read it.
    when: str
    #: ``kind`` in words.
    what: str


def _matches(fields: dict[str, Any], kind: str, value: str) -> bool:
    if kind == "resident":
        return fields.get("r") == value
    return fields.get(kind) == value


def _event(sid: str, f: dict[str, Any], roles: dict[str, str], tz: str) -> Event:
    device = f.get("d") or ""
    detail = "; ".join(
        p for p in (_x_words(f.get("k") or "", f.get("x") or ""), _fields(f, tz)) if p
    )
    where = f.get("site") or f.get("lab") or ""
    at = int(sid.partition("-")[0]) / 1000
    return Event(
        id=sid,
        at=at,
        when=localtime.stamp(at, tz),
        kind=f.get("k") or "",
        what=WHAT.get(f.get("k") or "", f.get("k") or ""),
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


def _n(word: str, n: str) -> str:
    return f"{n} {word}" if n == "1" else f"{n} {word}s"


def _x_words(kind: str, x: str) -> str:
    """A journal entry's packed ``x`` in words (``25:214``: ``25 tubes, 214 samples``)."""
    parts = x.split(":")
    match kind, parts:
        case "open", [cap, purpose]:
            return f"capacity {cap}, " + ("re-sample" if purpose == "1" else "pool")
        case "scan", [n]:
            return _n("sample", n) + " in the tube"
        case "undo", [n]:
            return _n("sample", n) + " left in the tube"
        case "close", [n, how]:
            return _n("sample", n) + (", full" if how == "full" else ", closed by hand")
        case "box_open", [cap]:
            return f"capacity {cap} tubes"
        case "box_add" | "box_remove" | "missing", [n] if n.isdecimal():
            return _n("sample", n)
        case "box_seal", [tubes, samples]:
            return f"{_n('tube', tubes)}, {_n('sample', samples)}"
        case "box_handover", [site]:
            return f"from site {site}"
        case "intake", [cond, where, n]:
            return ", ".join(p for p in (cond, _WHERE.get(where, ""), _n("sample", n)) if p)
        case "intake_close", [got, missing, extra, damaged]:
            return f"{got} received, {missing} missing, {extra} not listed, {damaged} damaged"
    return x


def _fields(f: dict[str, Any], tz: str) -> str:
    out = []
    for k in _DETAIL:
        value = f.get(k)
        if k == "x" or value in (None, ""):
            continue
        if k == "tested_at" and str(value).replace(".", "", 1).isdecimal():
            value = localtime.stamp(float(value) / (1000 if float(value) > 1e11 else 1), tz)
        if k in ("was", "held") and str(value).count("|") == 4:
            # A stored result value (outcome|ct|ct|lab|ms): said in words.
            value = LabResult.unpack(f.get("tube") or "", str(value)).words(tz)
        out.append(f"{k.replace('_', ' ')} {value}")
    if f.get("k") == "risk":
        flags = f.get("flags") or ""
        out.insert(0, ", ".join(_FLAGS.get(c, c) for c in flags) if flags else "flags cleared")
        if f.get("src") in _SOURCES:
            out.insert(1, _SOURCES[str(f["src"])])
    if f.get("k") == "round_create":
        out.insert(0, f"{f.get('name', '')}, pool {f.get('pool', '')}")
    return "; ".join(out)


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
    redis: AnyRedis,
    data_dir: Path,
    round_id: str,
    kind: str,
    value: str,
    tz: str = localtime.DEFAULT_TZ,
) -> list[Event]:
    """Every journal entry about ``value`` (a tube or box code, or a resident's hash in hex),
    archived and live, oldest first. An entry archived and not yet trimmed shows once.
    An unknown round is ``RoundNotFound``, not an empty history."""
    from sampling.binding.rounds import Rounds

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    await Rounds(redis).get(round_id)
    found = dict(_archived(data_dir, round_id, kind, value))
    found.update(await _live(redis, round_id, kind, value))
    roles = await _roles(redis)
    return [_event(sid, found[sid], roles, tz) for sid in sorted(found, key=_order)]


def _canonical(kind: str, code: str, secret: bytes) -> str:
    from sampling.codecheck import check_code
    from sampling.privacy import ResidentHasher

    if kind == "resident":
        return ResidentHasher(secret).hex(check_code(code, codes.CodeKind.RESIDENT, "resident"))
    return check_code(code, codes.CodeKind.TUBE if kind == "tube" else codes.CodeKind.BOX, kind)


def _admin_table(
    found: list[adminlog.AdminEntry], tz: str, round_id: str | None, as_json: bool
) -> None:
    from rich.console import Console
    from rich.table import Table

    if as_json:
        for a in found:
            row = {"id": a.id, "when": localtime.stamp(a.at, tz), "what": a.what, "by": a.by}
            click.echo(json.dumps(row | a.fields, ensure_ascii=False))
        return
    about = f" about round {round_id}" if round_id else ""
    table = Table(title=f"admin changes{about}: {len(found)} entries")
    for column in ("when", "what", "by", "details"):
        table.add_column(column)
    for a in found:
        details = ", ".join(f"{k} {v}" for k, v in a.fields.items())
        table.add_row(localtime.stamp(a.at, tz), a.what, a.by, details)
    Console().print(table)


@click.command(name="audit")
@click.argument("kind", type=click.Choice([*KINDS, "admin"]))
@click.argument("code", required=False, default="")
@click.option("--round", "round_id", default=None, help="The round to look in.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_command(kind: str, code: str, round_id: str | None, as_json: bool) -> None:
    """Show the history of a tube, a box or a resident: who, when, where, what;
    or, with ``admin``, every admin change (``--round R``: those about round R).

    A resident is given by code; it is hashed with the server's secret before the
    lookup, and shown only by the first 8 hex digits of that hash.
    """
    from rich.console import Console
    from rich.table import Table

    from sampling.cli import redis_for, run, settings
    from sampling.errors import SamplingError

    cfg = settings()
    if kind == "admin":

        async def admin(url: str) -> list[adminlog.AdminEntry]:
            from sampling.binding.rounds import Rounds

            redis = redis_for(url)
            try:
                if round_id is not None:
                    await Rounds(redis).get(round_id)
                return await adminlog.entries(redis, round_id=round_id)
            finally:
                await redis.aclose()

        _admin_table(run(admin), cfg.tz, round_id, as_json)
        return
    if not code or round_id is None:
        raise click.UsageError(f"audit {kind} needs a code and --round")
    try:
        value = _canonical(kind, code, cfg.secret())
    except SamplingError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc

    async def go(url: str) -> list[Event]:
        redis = redis_for(url)
        try:
            return await history(redis, cfg.data_dir, round_id, kind, value, cfg.tz)
        finally:
            await redis.aclose()

    events = run(go)
    if as_json:
        for e in events:
            click.echo(json.dumps(asdict(e), ensure_ascii=False))
        return
    shown = value[:8] if kind == "resident" else value
    table = Table(title=f"{kind} {shown} in round {round_id}: {len(events)} entries")
    for column in ("when", "what", "device", "role", "where", "tube", "box", "resident", "detail"):
        table.add_column(column)
    for e in events:
        table.add_row(e.when, e.what, e.device, e.role, e.site, e.tube, e.box, e.resident, e.detail)
    Console().print(table)
