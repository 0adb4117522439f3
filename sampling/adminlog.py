"""The admin journal: every change to the registry, with who, when, what and why.

Where admin changes are journaled (see also ``binding/keys.py``):

* ``{sampling}:admin`` (STREAM), one for the whole installation, holds every
  admin change: round create and close, site create, device create and revoke,
  risk flags, register imports. It sits in the registry's slot (the registry
  hashes share the ``{sampling}`` tag), so a registry write and its entry are one
  script (``admin.lua``) on a single Redis and on a cluster alike. Admin changes
  are few (hundreds a day), so the stream is kept, not archived.
* A bulk registration (``POST /v1/sites/bulk``, ``/v1/devices/bulk``) is one
  entry for the call (``site_bulk``, ``device_bulk``) with its counts and the ids
  it registered, written with the records in one script (``admin_bulk.lua``); a
  retry that finds every row already there writes none.
* A round's own journal ``{rd:R}:journal`` also gets the round-scoped ones
  (``round_create``, ``round_close``, one ``risk`` entry per resident), written
  in the same script as the round's state, so the round's Parquet archive tells
  its whole story and ``sampling audit resident`` shows a risk flag change.

Entry fields: ``k`` (kind), ``d`` (who: a device id, or ``cli:<user>``; a round's
archive names them ``kind`` and ``device``, see ``sampling/journal.py``), then
what: ``round``, ``site``, ``device``, ``role``, ``grid``, ``lab``, ``n``,
``file``, ``refused``, and ``reason`` where the change is a correction. A ``risk``
entry's ``src`` is ``manual`` (``PUT /risk``, reason required) or ``register``
(the round's flags re-derived from the register: ``n`` changed, ``flagged``,
``version``); a ``register_import`` carries ``scope``, ``replaced`` (communities or
grids), ``rows``/``stored``/``refused``, the households and residents added,
removed and changed, the register ``version`` and the ``rounds`` whose flags followed;
a bulk entry's ``n`` (rows), ``created``, ``unchanged``, ``roles`` and ``ids``.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sampling.errors import BadInput
from sampling.store.client import as_bytes
from sampling.store.scripts import Call, Runner

if TYPE_CHECKING:
    from sampling.store.client import AnyRedis

TAG = "{sampling}"
ADMIN = TAG + ":admin"

#: The kinds of admin entry, and the word a person reads for each.
KINDS = {
    "round_create": "round created",
    "round_close": "round closed",
    "site_create": "site registered",
    "device_create": "device registered",
    "device_bulk": "devices registered in bulk",
    "site_bulk": "sites registered in bulk",
    "device_revoke": "device revoked",
    "risk": "risk flags set",
    "register_import": "register imported",
}


def cli_user() -> str:
    """Who a CLI command acts as: the operating-system user at the terminal."""
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "cli:unknown"


def entry(kind: str, by: str, **what: object) -> list[str]:
    """An admin journal entry as the flat field/value list XADD takes (empty values left out)."""
    pairs = ["k", kind, "d", by or "?"]
    for name, value in what.items():
        if value not in (None, ""):
            pairs += [name, str(value)]
    return pairs


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteRecord(Call[bool]):
    """admin.lua: one registry record and its admin journal entry.

    Answers False (nothing written) when ``new`` and the id exists, or not ``new``
    and it does not.
    """

    package = "sampling"
    name = "admin"

    #: The registry hash written to (``{sampling}:rounds``, ``:sites``, ``:devices``).
    registry: str
    record_id: str
    record: bytes
    new: bool
    #: The journal entry (:func:`entry`).
    journal: list[str]
    #: A set the id joins too (``{sampling}:revoked``), or None.
    also_set: str | None = None

    def layout(self) -> tuple[list[Any], list[Any]]:
        ks = [self.registry, ADMIN, *([self.also_set] if self.also_set else [])]
        mode = "new" if self.new else "update"
        return ks, [self.record_id, self.record, mode, *self.journal]

    def decode(self, reply: Any) -> bool:
        return bool(int(reply))


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteRecords(Call[int]):
    """admin_bulk.lua: many records of one registry and one journal entry, all or none.

    Answers 0 when written, else the first row (1-based) whose record changed since
    it was read (nothing written).
    """

    package = "sampling"
    name = "admin_bulk"

    registry: str
    #: (id, the record read or None, the record to write or None) per row.
    rows: list[tuple[str, bytes | None, bytes | None]]
    #: The journal entry; None: nothing is journaled.
    journal: list[str] | None = None

    def layout(self) -> tuple[list[Any], list[Any]]:
        args: list[Any] = [str(len(self.rows))]
        for record_id, seen, record in self.rows:
            args += [record_id, seen or b"", record or b""]
        return [self.registry, ADMIN], args + (self.journal or [])

    def decode(self, reply: Any) -> int:
        return int(reply)


class OnceEach:
    """A bulk call names each record once: the second naming of an id is a 400 for
    its row (``<rows>[i]``), checked row by row in the caller's order."""

    def __init__(self, rows: str, field: str) -> None:
        self._rows, self._field = rows, field
        self._first: dict[str, int] = {}

    def __call__(self, i: int, ident: str) -> None:
        if ident in self._first:
            raise BadInput(
                f"{self._rows}[{i}]: {ident} is also {self._rows}[{self._first[ident]}]; "
                f"give each {self._field} once",
                index=i,
                **{self._field: ident},
            )
        self._first[ident] = i


class Registry:
    """Registry writes, each with its admin journal entry, in one atomic step."""

    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._run = Runner(redis)

    async def write(
        self,
        registry: str,
        record_id: str,
        record: bytes,
        *,
        new: bool,
        journal: list[str],
        also_set: str | None = None,
    ) -> bool:
        """Write ``record`` under ``record_id``; False (nothing written) when ``new`` and
        the id exists, or not ``new`` and it does not."""
        call = WriteRecord(registry=registry, record_id=record_id, record=record, new=new,
                           journal=journal, also_set=also_set)  # fmt: skip
        return await self._run(call)

    async def read_many(self, registry: str, record_ids: list[str]) -> list[bytes | None]:
        """The records under ``record_ids`` as stored (None where there is none)."""
        if not record_ids:
            return []
        found = await self._redis.hmget(registry, record_ids)
        return [as_bytes(v) if v is not None else None for v in found]

    async def write_many(
        self,
        registry: str,
        rows: list[tuple[str, bytes | None, bytes | None]],
        journal: list[str] | None,
    ) -> int:
        """Write rows ``(id, the record read, the record to write or None)`` and the
        journal entry, all or nothing; 0 when written, else the first row (1-based)
        whose record changed since it was read (then nothing is written)."""
        return await self._run(WriteRecords(registry=registry, rows=rows, journal=journal))

    async def note(self, journal: list[str]) -> None:
        """An admin entry with no registry record of its own (risk flags, imports)."""
        await self._redis.xadd(ADMIN, dict(zip(journal[::2], journal[1::2], strict=True)))


@dataclass(frozen=True)
class AdminEntry:
    id: str
    at: float
    kind: str
    by: str
    fields: dict[str, str]

    @property
    def what(self) -> str:
        return KINDS.get(self.kind, self.kind)


async def entries(redis: AnyRedis, *, round_id: str | None = None) -> list[AdminEntry]:
    """Every admin entry, oldest first; with ``round_id``, only those about that round."""
    out: list[AdminEntry] = []
    start = "-"
    while True:
        page: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(
            ADMIN, min=start, count=10_000
        )  # type: ignore[assignment]  # replies are bytes: our clients never decode
        for sid, raw in page:
            f = {k.decode(): v.decode() for k, v in raw.items()}
            if round_id is not None and f.get("round") != round_id:
                continue
            ident = sid.decode()
            out.append(
                AdminEntry(
                    id=ident,
                    at=int(ident.partition("-")[0]) / 1000,
                    kind=f.pop("k", ""),
                    by=f.pop("d", ""),
                    fields=f,
                )
            )
        if len(page) < 10_000:
            return out
        start = "(" + page[-1][0].decode()
