"""The binding core: open, scan, undo, close, offline batches, tube reads, risk flags.

Every operation, online or offline, goes through one path: codes are checked in
Python (a garbled read never reaches Redis), residents are keyed-hashed, the
tube's ever-opened claim is taken for opens the round will accept, and then
``apply.lua`` checks every rule, writes the state and appends the journal entry in
one atomic step; a claim this request took for an open the step refused after all
is released (``settle.lua``).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sampling import adminlog, codes, localtime
from sampling.adminlog import Registry
from sampling.binding import keys
from sampling.binding.errors import ReasonRequired, RoundNotFound, TubeNotFound
from sampling.binding.messages import message_for, status_http
from sampling.binding.models import (
    POOL_SIZES,
    Batch,
    BatchOp,
    BatchResult,
    Clock,
    DeviceProgress,
    OpResult,
    Purpose,
    RiskUpdate,
    Round,
    Tube,
)
from sampling.binding.scripts import (
    SEQ_AHEAD,
    SEQ_MAX,
    TAKEN,
    Apply,
    ApplyOp,
    ApplyReply,
    Claim,
    RiskFlags,
    Settle,
)
from sampling.binding.tube import TubeRecord
from sampling.codecheck import check_code, tube_code
from sampling.errors import BadInput, BatchTooLarge, Forbidden, NotFound, Refusal
from sampling.oplog import fingerprint
from sampling.store.client import as_bytes
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from sampling.auth.models import Device
    from sampling.binding.rounds import Rounds, Sites
    from sampling.privacy import ResidentHasher
    from sampling.store.client import AnyRedis
    from sampling.store.lane import Lane


@dataclass(frozen=True, slots=True)
class _Op:
    seq: int
    op: str
    kind: str
    tube: str
    rhash: bytes = b""
    capacity: int = 0
    purpose: int = 0
    #: For undo: the hash named in the request (b"" = "whoever was last").
    named: bytes = b""
    #: The device's time in Unix ms as sent (0: none), part of the payload.
    at_ms: int = 0
    #: apply.lua's clock value: the trusted device time in ms, "" or "u" (untrusted).
    clock: str = ""


_CLOCKS: dict[str, Clock] = {"": "server", "u": "untrusted"}
UNTRUSTED_CLOCK = (
    "The handheld's clock is off (its time is in the future or before the round opened): "
    "the operation was recorded at the server's time and flagged. Set the handheld's date "
    "and time."
)


def _fingerprint(op: _Op) -> bytes:
    named = op.named if op.kind == "undo" else op.rhash
    payload = f"{op.kind}|{op.tube}|{op.capacity}|{op.purpose}|".encode() + named
    # A request without a device time keeps the fingerprint it always had.
    return fingerprint(op.op, payload + (b"@%d" % op.at_ms if op.at_ms else b""))


class Binder:
    def __init__(
        self,
        redis: AnyRedis,
        hasher: ResidentHasher,
        rounds: Rounds,
        sites: Sites,
        *,
        max_batch: int = 500,
        waitaof: bool = False,
        lane: Lane | None = None,
        clock_skew: float = 300.0,
        tz: str = localtime.DEFAULT_TZ,
    ) -> None:
        self._redis = redis
        self._hasher = hasher
        self._rounds = rounds
        self._sites = sites
        self._run = Runner(redis, waitaof=waitaof, lane=lane)
        self._max_batch = max_batch
        self._lane = lane
        self._known: dict[str, Round] = {}
        self._skew = clock_skew
        self._tz = tz

    # -- single operations (the online handheld) ---------------------------------

    async def open(
        self,
        device: Device,
        round_id: str,
        tube: str,
        seq: int,
        op: str,
        capacity: int | None,
        purpose: Purpose,
        at: float | None = None,
    ) -> OpResult:
        item = await self._prepare(
            round_id,
            BatchOp(
                op=op,
                seq=seq,
                kind="open",
                tube=tube,
                capacity=capacity,
                purpose=purpose,
                at=at,
            ),
        )
        return await self._single(device, round_id, item)

    async def scan(
        self,
        device: Device,
        round_id: str,
        tube: str,
        seq: int,
        op: str,
        resident: str,
        at: float | None = None,
    ) -> OpResult:
        item = await self._prepare(
            round_id, BatchOp(op=op, seq=seq, kind="scan", tube=tube, resident=resident, at=at)
        )
        return await self._single(device, round_id, item)

    async def undo(
        self,
        device: Device,
        round_id: str,
        tube: str,
        seq: int,
        op: str,
        resident: str | None,
        at: float | None = None,
    ) -> OpResult:
        item = await self._prepare(
            round_id, BatchOp(op=op, seq=seq, kind="undo", tube=tube, resident=resident, at=at)
        )
        if not item.rhash:
            item = await self._last_member(round_id, item)
        return await self._single(device, round_id, item)

    async def close(
        self, device: Device, round_id: str, tube: str, seq: int, op: str, at: float | None = None
    ) -> OpResult:
        item = await self._prepare(
            round_id, BatchOp(op=op, seq=seq, kind="close", tube=tube, at=at)
        )
        return await self._single(device, round_id, item)

    async def _single(self, device: Device, round_id: str, item: _Op) -> OpResult:
        (result,) = await self._apply(device, round_id, [item])
        if result.status != "ok":
            # The clock is named only when the device sent a time.
            clock = {} if result.clock == "server" else {"clock": result.clock}
            raise Refusal(
                result.status,
                result.message,
                status_http(result.status),
                tube=result.tube,
                seq=result.seq,
                count=result.count,
                **clock,
            )
        return result

    # -- offline batches -----------------------------------------------------------

    async def batch(self, device: Device, round_id: str, batch: Batch) -> BatchResult:
        if not batch.ops:
            raise BadInput("the batch is empty")
        if len(batch.ops) > self._max_batch:
            raise BatchTooLarge(
                f"{len(batch.ops)} operations in one batch; the limit is {self._max_batch}. "
                "Send them in several batches, in sequence order.",
                limit=self._max_batch,
                size=len(batch.ops),
            )
        seqs = [o.seq for o in batch.ops]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            raise BadInput(
                "operations in a batch must be in increasing sequence order", seqs=seqs[:20]
            )
        # Every code is checked before anything is applied: a malformed batch
        # changes nothing, and the refusal names the operation that caused it.
        items: list[_Op] = []
        for index, o in enumerate(batch.ops):
            try:
                item = await self._prepare(round_id, o)
                if item.kind == "undo" and not item.rhash:
                    raise BadInput("an undo in an offline batch must name the resident it undoes")
            except BadInput as exc:
                exc.message = f"ops[{index}] (seq {o.seq}, op {o.op!r}): {exc.message}"
                exc.detail.update(index=index, seq=o.seq, op=o.op)
                raise
            items.append(item)
        results = await self._apply(device, round_id, items)
        refused = sum(r.status != "ok" for r in results)
        gaps = await self.gaps(round_id, device.id)
        return BatchResult(
            results=results,
            applied=len(results) - refused,
            refused=refused,
            gaps=[[a, b] for a, b in gaps],
        )

    async def progress(self, round_id: str, device_id: str) -> DeviceProgress:
        await self._round(round_id)  # RoundNotFound for an unknown round
        highest = await self._redis.strlen(keys.oplog(round_id, device_id)) // 8
        return DeviceProgress(
            device=device_id,
            round=round_id,
            highest=highest,
            gaps=[[a, b] for a, b in await self.gaps(round_id, device_id)],
        )

    async def gaps(
        self, round_id: str, device_id: str, window: int = 65_536
    ) -> list[tuple[int, int]]:
        """Unused sequence numbers below the device's highest (the last ``window`` of them)."""
        key = keys.oplog(round_id, device_id)
        size = await self._redis.strlen(key)
        highest = size // 8
        start = max(0, highest - window)
        raw = await self._redis.getrange(key, start * 8, size - 1)
        data = as_bytes(raw)
        records = np.frombuffer(data[: (len(data) // 8) * 8], dtype=np.uint64)
        unused = np.flatnonzero(records == 0) + start + 1
        out: list[tuple[int, int]] = []
        if unused.size:
            # Split the unused numbers into runs of consecutive ones.
            breaks = np.flatnonzero(np.diff(unused) != 1)
            firsts = np.concatenate(([unused[0]], unused[breaks + 1]))
            lasts = np.concatenate((unused[breaks], [unused[-1]]))
            out = [(int(a), int(b)) for a, b in zip(firsts[:100], lasts[:100], strict=True)]
        return out

    # -- the shared path -------------------------------------------------------------

    async def _round(self, round_id: str) -> Round:
        # Only the pool and the opening time are read, and neither changes.
        if round_id not in self._known:
            self._known[round_id] = await self._rounds.get(round_id)
        return self._known[round_id]

    async def _pool(self, round_id: str) -> int:
        return (await self._round(round_id)).pool

    async def _clock(self, round_id: str, at: float | None) -> str:
        """apply.lua's clock value for a device time: its ms, "" (none) or "u".

        A device clock may be a little behind the server's; the same skew is
        allowed before the round's opening as after the server's now.
        """
        if at is None:
            return ""
        opened = (await self._round(round_id)).created_at
        if at > time.time() + self._skew or at < opened - self._skew:
            return "u"
        return str(round(at * 1000))

    async def _prepare(self, round_id: str, o: BatchOp) -> _Op:
        tube = tube_code(o.tube)
        rhash = b""
        if o.resident is not None:
            rhash = self._hasher.digest(check_code(o.resident, codes.CodeKind.RESIDENT, "resident"))
        if o.kind == "scan" and not rhash:
            raise BadInput("a scan needs the resident code", seq=o.seq)
        capacity, purpose = 0, 0
        if o.kind == "open":
            purpose = 1 if o.purpose == "resample" else 0
            capacity = (
                o.capacity
                if o.capacity is not None
                else (1 if purpose else await self._pool(round_id))
            )
            if capacity not in POOL_SIZES:
                raise BadInput(
                    f"pool size {capacity} is not one of {POOL_SIZES}", capacity=capacity
                )
            if purpose and capacity != 1:
                raise BadInput("a re-sample tube holds one person: capacity must be 1")
        return _Op(
            seq=o.seq,
            op=o.op,
            kind=o.kind,
            tube=tube,
            rhash=rhash,
            capacity=capacity,
            purpose=purpose,
            named=rhash,
            at_ms=0 if o.at is None else round(o.at * 1000),
            clock=await self._clock(round_id, o.at),
        )

    async def _last_member(self, round_id: str, item: _Op) -> _Op:
        raw = await self._redis.get(keys.tube(round_id, item.tube))
        if raw is None:
            return item  # the script answers tube_not_found, and records it
        members = TubeRecord(as_bytes(raw)).members
        last = members[-1][0] if members else b"\0" * 8
        return _Op(
            seq=item.seq,
            op=item.op,
            kind=item.kind,
            tube=item.tube,
            rhash=last,
            named=b"",
            at_ms=item.at_ms,
            clock=item.clock,
        )

    async def _read(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Replies to read commands on the round's slot, in one round trip."""
        if self._lane is not None:
            return await self._lane.execute(*commands)
        pipe = self._redis.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())

    async def _claims(
        self, device: Device, round_id: str, items: list[_Op], nonce: str
    ) -> dict[str, int]:
        """Take the ever-opened claim of each tube the round's step will let this request open.

        A claim is its own step (another slot), so it is taken only for an open
        the round's step is expected to accept: the round open, the device not
        revoked, the sequence number in range with no op record yet (a retry, a
        reused op id or a sequence conflict never claims a tube), the tube not
        opened in the round already. These are read from the round's slot just
        before; what changes in between (the round closed, the device revoked,
        milliseconds) is undone by :meth:`_settle`. Returns claim.lua's answer per
        tube: 2 taken now by this request, 1 the round's already, 0 another round's.
        """
        opens = [i for i in items if i.kind == "open"]
        if not opens:
            return {}
        log = keys.oplog(round_id, device.id)
        reads: list[tuple[Any, ...]] = [
            ("HGET", keys.meta(round_id), "state"),
            ("SISMEMBER", keys.revoked(round_id), device.id),
            ("STRLEN", log),
        ]
        for i in opens:
            reads.append(("GETRANGE", log, (i.seq - 1) * 8, i.seq * 8 - 1))
            reads.append(("EXISTS", keys.tube(round_id, i.tube)))
        replies = await self._read(reads)
        state, revoked, size = replies[:3]
        if as_bytes(state or b"") != b"open" or int(revoked):
            return {}  # the round's step refuses every operation of this request
        fresh = {
            i.seq: not as_bytes(record).strip(b"\0") and not int(exists)
            for i, record, exists in zip(opens, replies[3::2], replies[4::2], strict=True)
        }
        highest = int(size) // 8
        held: dict[str, int] = {}
        for i in items:
            # The same range rule as apply.lua, which moves `highest` as it goes.
            if i.seq < 1 or i.seq > SEQ_MAX or i.seq > highest + SEQ_AHEAD:
                continue
            highest = max(highest, i.seq)
            if i.kind != "open" or i.tube in held or not fresh[i.seq]:
                continue
            held[i.tube] = await self._run(Claim.of_tube(i.tube, round_id, nonce))
        return held

    async def _settle(
        self, round_id: str, nonce: str, claims: dict[str, int], accepted: set[str]
    ) -> None:
        """Keep the claims this request took for opens the round accepted; release the rest.

        Called only once the round's step has answered (a lost connection leaves
        a claim with its round, as an accepted open would).
        """
        await asyncio.gather(
            *(
                self._run(Settle.of_tube(tube, round_id, nonce, accepted=tube in accepted))
                for tube, got in claims.items()
                if got == TAKEN
            )
        )

    async def _apply(self, device: Device, round_id: str, items: list[_Op]) -> list[OpResult]:
        # A grid team binds too: residents sampled at home, at their door (sampling.lab.doorlog).
        if device.role not in ("scanner", "admin", "grid"):
            raise Forbidden(f"a {device.role} device cannot bind tubes")
        if round_id not in self._known:
            await self._round(round_id)  # NotFound for an unknown round, before any claim
        nonce = secrets.token_hex(8)
        claims = await self._claims(device, round_id, items, nonce)
        call = Apply(
            round_id,
            device.id,
            device.site,
            [
                ApplyOp(
                    seq=i.seq,
                    fingerprint=_fingerprint(i),
                    op=i.op,
                    kind=i.kind,
                    tube=i.tube,
                    capacity=i.capacity,
                    claim=claims.get(i.tube, 0) > 0,
                    purpose=i.purpose,
                    rhash=i.rhash,
                    clock=i.clock,
                )
                for i in items
            ],
        )
        reply: ApplyReply = await self._run(call)
        if claims:
            # A refused open keeps no claim it took: the barcode stays usable elsewhere.
            accepted = {
                i.tube
                for i, got in zip(items, reply.ops, strict=False)
                if i.kind == "open" and got.status == "ok"
            }
            await self._settle(round_id, nonce, claims, accepted)
        if reply.refused == "revoked":
            raise Refusal("token_revoked", "this device's token was revoked", 401)
        if reply.refused == "round_not_found":
            raise RoundNotFound(f"no round {round_id}: check the round id", round=round_id)
        out: list[OpResult] = []
        for i, got in zip(items, reply.ops, strict=True):
            clock = _CLOCKS.get(i.clock, "device")
            if got.status != "ok":
                message = await self._explain(round_id, got.status, i, got.aux)
            else:
                message = UNTRUSTED_CLOCK if clock == "untrusted" else ""
            out.append(
                OpResult(
                    seq=i.seq,
                    op=i.op,
                    kind=i.kind,
                    tube=i.tube,
                    status=got.status,
                    message=message,
                    count=got.aux,
                    closed=got.closed,
                    replayed=got.replayed,
                    clock=clock,
                )
            )
        return out

    async def _explain(self, round_id: str, status: str, item: _Op, aux: int) -> str:
        detail = ""
        if status == "resident_already_sampled":
            detail = await self._last_resample(round_id, item) or await self._where_sampled(
                round_id, item.rhash
            )
        return message_for(status, tube=item.tube, count=aux, detail=detail)

    async def _last_resample(self, round_id: str, item: _Op) -> str:
        """For a refused re-sample: the attempt that is still pending, in words."""
        raw = await self._redis.get(keys.tube(round_id, item.tube))
        if raw is None or TubeRecord(as_bytes(raw)).purpose != "resample":
            return ""
        bucket = keys.resident_bucket(round_id, item.rhash)
        prev = await self._redis.hget(bucket, b"r" + item.rhash[2:])
        if prev is None:
            return ""
        return (
            f"re-sampled in tube {as_bytes(prev).decode()}, which has not come back invalid "
            "or lost; another re-sample only after that"
        )

    async def _where_sampled(self, round_id: str, rhash: bytes) -> str:
        bucket = keys.resident_bucket(round_id, rhash)
        serial = await self._redis.hget(bucket, rhash[2:])
        if serial is None:
            return ""
        tube = codes.make_tube(int(serial))
        raw = await self._redis.get(keys.tube(round_id, tube))
        if raw is None:
            return f"in tube {tube}"
        rec = TubeRecord(as_bytes(raw))
        when = next((t for h, t in rec.members if h == rhash), rec.opened_at)
        try:
            site = await self._sites.get(rec.site)
            where = f"{site.name} ({site.community}, {site.street})"
        except NotFound:
            where = f"site {rec.site}"
        return f"in tube {tube} at {where} at {localtime.hm(when, self._tz)}"

    async def shutdown(self) -> None:
        if self._lane is not None:
            await self._lane.aclose()
        await self._run.aclose()

    # -- reads and flags -------------------------------------------------------------

    async def tube(self, round_id: str, tube: str) -> Tube:
        code = check_code(tube, codes.CodeKind.TUBE, "tube")
        raw = await self._redis.get(keys.tube(round_id, code))
        if raw is None:
            raise TubeNotFound(f"tube {code} was not opened in round {round_id}", tube=code)
        return TubeRecord(as_bytes(raw)).view(round_id, code)

    async def set_risk(self, round_id: str, update: RiskUpdate, *, by: str = "") -> int:
        """Set (or clear, with no flags) residents' manual risk flags; each change is
        journaled in the round, in the same atomic step (``risk.lua``), and the call
        once in the admin journal. Setting a flag by hand needs a reason; it adds to
        the flags the register gives (``binding/risk.py``) and stays until cleared."""
        await self._rounds.get(round_id)
        hashes = [
            (
                self._hasher.digest(check_code(r.resident, codes.CodeKind.RESIDENT, "resident")),
                "".join(sorted(set(r.flags))),
            )
            for r in update.residents
        ]
        if not update.reason.strip() and any(f for _, f in hashes):
            raise ReasonRequired(
                "say why these residents are flagged by hand (reason): the register's "
                "labels and health-code colours flag residents by themselves",
            )
        written = await self._run(RiskFlags(round_id, by, update.reason, hashes))
        if written is None:
            raise RoundNotFound(f"no round {round_id}: check the round id", round=round_id)
        set_, cleared = sum(1 for _, f in hashes if f), sum(1 for _, f in hashes if not f)
        await Registry(self._redis).note(
            adminlog.entry(
                "risk",
                by,
                round=round_id,
                n=written,
                set=set_,
                cleared=cleared,
                reason=update.reason,
                src="manual",
            )
        )
        return written
