"""A round's journal entries, decoded: the stream's compact fields to named, typed columns.

The live stream ``{rd:R}:journal`` keeps short field names (``k``, ``d``, ``r``,
``x``, ...) and packs a kind's small values into one ``x`` (``"10:0"``), because
every byte of a scan's entry is paid in memory and AOF, millions of times a
round. Nothing downstream reads those names: the archiver decodes each chunk with
:func:`decode` before it writes a Parquet part, and every reader (the derived
tables, ``sampling audit``, the closing report) reads the columns of
:class:`Entry`. An archive part written before the parts had these names (columns
``k``, ``d``, ``r``, ``x``, ...) is decoded on read by the same function
(``sampling.archive.journal``), so old and new parts read alike.

What each kind's ``x`` holds (written by ``binding/apply.lua``,
``boxing/custody.lua``, ``lab/doorlog.lua``) is :data:`PACKED`: the columns it is
split into, in order. A kind not listed there keeps a non-empty ``x`` as
``detail``, so a new kind's values reach the archive before it is named here.
"""

from __future__ import annotations

from typing import Final

import msgspec
import polars as pl


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One journal entry, as the archive's Parquet parts hold it (one column per field).

    Null where the kind does not carry the field. Times are Unix ms.
    """

    #: Stream id (``<ms>-<n>``): the order of entries.
    id: str
    #: When the server accepted the change (the stream id's ms).
    ts: int
    #: What changed: open, scan, undo, close, box_open ... (stream ``k``).
    kind: str
    #: Who: the device id, or ``cli:<user>`` for an admin change (stream ``d``).
    device: str | None = None
    site: str | None = None
    seq: int | None = None
    op: str | None = None
    tube: str | None = None
    #: The resident's keyed hash, hex (stream ``r``, 8 raw bytes); '' where none.
    rhash: str | None = None
    box: str | None = None
    lab: str | None = None
    courier: str | None = None
    #: The device's own time of the operation, when the server trusted it (stream ``at``).
    device_at: int | None = None
    #: ``u``: the device sent a time the server did not trust (stream ``clk``).
    device_clock: str | None = None
    # -- unpacked from ``x`` (see PACKED) --
    #: open: the tube's capacity; box_open: the box's, in tubes.
    capacity: int | None = None
    #: open: ``pool`` or ``resample``.
    purpose: str | None = None
    #: scan, undo, close: residents in the tube after the change; box_add, intake,
    #: missing: residents in the tube.
    residents: int | None = None
    #: close: ``full`` or ``hand``; box_remove: why; round_close, risk,
    #: result_resolved: the reason given.
    reason: str | None = None
    #: box_seal: tubes and samples counted in the box.
    tubes: int | None = None
    samples: int | None = None
    #: box_handover: the site the box was handed over at.
    from_site: str | None = None
    #: box_pickup: where the courier picked it up.
    place: str | None = None
    #: intake: ok, damaged or leaking; and where the tube was listed (manifest,
    #: other_box, unboxed, unbound).
    condition: str | None = None
    where: str | None = None
    #: intake_close: tubes received, missing, extra (not listed), damaged.
    received: int | None = None
    missing: int | None = None
    extra: int | None = None
    damaged: int | None = None
    # -- lab results (record.lua, resolve.lua) and door outcomes (doorlog.lua) --
    #: result*: negative, positive, invalid; door: what the team found.
    outcome: str | None = None
    ct_orf1ab: float | None = None
    ct_n: float | None = None
    tested_at: int | None = None
    #: result_resolved: keep, held or retest; the stored value before; the held values.
    decision: str | None = None
    was: str | None = None
    held: str | None = None
    grid: str | None = None
    # -- admin entries of the round (round_create, risk) --
    name: str | None = None
    pool: int | None = None
    #: risk: the resident's flags now, the manual ones given, and where they came
    #: from (``manual`` or ``register``; stream ``src``).
    flags: str | None = None
    manual: str | None = None
    source: str | None = None
    #: ``x`` of a kind :data:`PACKED` does not know, as written.
    detail: str | None = None


#: Stream field -> column, where the name differs.
RENAMED: Final = {
    "k": "kind",
    "d": "device",
    "r": "rhash",
    "at": "device_at",
    "clk": "device_clock",
    "src": "source",
}
#: What ``x`` holds, per kind: its ``:``-separated parts, in order. A kind with one
#: part takes ``x`` whole (a reason or place may hold a colon).
PACKED: Final[dict[str, tuple[str, ...]]] = {
    "open": ("capacity", "purpose"),
    "scan": ("residents",),
    "undo": ("residents",),
    "close": ("residents", "reason"),
    "box_open": ("capacity",),
    "box_add": ("residents",),
    "box_remove": ("reason",),
    "box_seal": ("tubes", "samples"),
    "box_handover": ("from_site",),
    "box_pickup": ("place",),
    "intake": ("condition", "where", "residents"),
    "missing": ("residents",),
    "intake_close": ("received", "missing", "extra", "damaged"),
    "door": ("outcome",),
}
_DTYPES: Final = {int: pl.Int64(), float: pl.Float64(), str: pl.String()}


def _dtype(annotation: object) -> pl.DataType:
    args = getattr(annotation, "__args__", (annotation,))
    return next(_DTYPES[a] for a in args if a in _DTYPES)


#: The columns of every archived part, in order.
SCHEMA: Final = pl.Schema({f.name: _dtype(f.type) for f in msgspec.structs.fields(Entry)})
#: ``open``'s purpose digit (apply.lua: 0 pool, 1 re-sample) in words.
_PURPOSES: Final = {"0": "pool", "1": "resample"}


def _unpacked(present: set[str]) -> dict[str, pl.Expr]:
    """Each column some kind packs into ``x``: its value, picked by kind and position."""
    if "x" not in present:
        return {}
    kind, x = pl.col("kind"), pl.col("x")
    parts = x.str.split(":")
    picks: dict[str, list[pl.Expr]] = {}
    for k, names in PACKED.items():
        for i, name in enumerate(names):
            value = x if len(names) == 1 else parts.list.get(i, null_on_oob=True)
            picks.setdefault(name, []).append(pl.when(kind == k).then(value))
    out = {name: pl.coalesce(exprs) for name, exprs in picks.items()}
    out["purpose"] = out["purpose"].replace_strict(_PURPOSES, default=None)
    out["detail"] = pl.when(~kind.is_in(list(PACKED)) & (x != "")).then(x)
    return out


def _typed(name: str, value: pl.Expr, have: pl.DataType | None) -> pl.Expr:
    dtype = SCHEMA[name]
    if dtype == pl.String or have == dtype:
        return value.cast(dtype).alias(name)
    # Text in the stream: '' (a field written empty) is no value.
    text = value.cast(pl.String)
    return pl.when(text != "").then(text).cast(dtype).alias(name)


def decode(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Stream-named rows (``id``, ``ts`` and the stream's fields as text, ``r`` as hex)
    as :class:`Entry` columns, in :data:`SCHEMA` order; any field not in it kept after.

    Idempotent on what it returns, so a part already decoded passes through as it is.
    """
    schema = raw.collect_schema()
    present = set(schema.names())
    if "kind" in present and "k" not in present:
        return raw
    have = {RENAMED.get(c, c): t for c, t in schema.items()}
    renamed = raw.rename({k: v for k, v in RENAMED.items() if k in present})
    present = {RENAMED.get(c, c) for c in present}
    if "kind" not in present:
        renamed = renamed.with_columns(pl.lit(None, pl.String).alias("kind"))
        present.add("kind")
    unpacked = _unpacked(present)
    columns = []
    for name in SCHEMA:
        value = unpacked.get(name)
        if name in present:
            value = pl.col(name) if value is None else pl.coalesce(value, pl.col(name))
        if value is None:
            columns.append(pl.lit(None, SCHEMA[name]).alias(name))
        else:
            columns.append(_typed(name, value, have.get(name) if name not in unpacked else None))
    others = sorted(present - set(SCHEMA) - {"x"})
    return renamed.select(*columns, *(pl.col(c).cast(pl.String) for c in others))


def empty() -> pl.LazyFrame:
    """A journal with no entries: every column, no rows."""
    return pl.LazyFrame(schema=SCHEMA)
