"""The binding core: open, scan, undo, close, offline batches, tube reads, risk flags.

Every operation, online or offline, goes through one path: codes are checked in
Python (a garbled read never reaches Redis), residents are keyed-hashed, the
tube's ever-opened claim is taken for opens, and then ``apply.lua`` checks every
rule, writes the state and appends the journal entry in one atomic step.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from sampling import codes, localtime
from sampling.binding import keys
from sampling.binding.errors import RoundNotFound, TubeNotFound
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
from sampling.binding.tube import TubeRecord
from sampling.boxing import keys as boxing_keys
from sampling.errors import (
    BadInput,
    BatchTooLarge,
    Forbidden,
    GarbledCode,
    NotDurable,
    NotFound,
    Refusal,
    Unavailable,
)
from sampling.lab import keys as lab_keys
from sampling.oplog import fingerprint
from sampling.store.client import as_bytes
from sampling.store.scripts import Scripts, source

if TYPE_CHECKING:
    from sampling.auth.models import Device
    from sampling.binding.rounds import Rounds, Sites
    from sampling.privacy import ResidentHasher
    from sampling.store.client import AnyRedis
    from sampling.store.lane import Lane

#: A device may skip at most this many sequence numbers at once (lost operations
#: show up as gaps; a wild number does not allocate megabytes of op log).
SEQ_AHEAD = 10_000
SEQ_MAX = 1_000_000
_CLAIM_LUA = "claim"
_PKG = "sampling.binding"


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


@lru_cache(maxsize=65_536)
def _tube_code(text: str) -> str:
    # A tube code comes with every scan into it: ten checks of the same text.
    return check_code(text, codes.CodeKind.TUBE, "tube")


def check_code(text: str, kind: codes.CodeKind, field: str) -> str:
    """The canonical code, or a 400 that tells the sampler what is wrong with the read."""
    code = codes.normalize(text)
    if codes.is_valid(code, kind):
        return code
    found = codes.classify(code)
    if found is kind:
        raise GarbledCode(
            f"{field} {code} fails its check character: a partial or misread scan. Scan it "
            "again, or type it and confirm one of the suggested codes.",
            field=field,
            candidates=codes.typo_candidates(code),
        )
    if found is codes.CodeKind.UNKNOWN:
        raise GarbledCode(
            f"{field} '{code[:24]}' is not a {kind.value} code. Scan again.", field=field
        )
    raise BadInput(
        f"{field} {code} is a {found.value} code, not a {kind.value} code.",
        field=field,
        kind=found.value,
    )


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
        self._scripts = Scripts(redis, _PKG, ("apply", _CLAIM_LUA))
        self._max_batch = max_batch
        self._waitaof = waitaof
        self._lane = lane
        #: Plain clients to cluster nodes, for WAITAOF on the connection that wrote.
        self._nodes: dict[str, Any] = {}
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
        # changes nothing.
        items = [await self._prepare(round_id, o) for o in batch.ops]
        if any(i.kind == "undo" and not i.rhash for i in items):
            raise BadInput("an undo in an offline batch must name the resident it undoes")
        results = await self._apply(device, round_id, items)
        refused = sum(r.status != "ok" for r in results)
        gaps = await self.gaps(round_id, device.id)
        return BatchResult(
            results=results, applied=len(results) - refused, refused=refused, gaps=gaps
        )

    async def progress(self, round_id: str, device_id: str) -> DeviceProgress:
        await self._round(round_id)  # RoundNotFound for an unknown round
        highest = await self._redis.strlen(keys.oplog(round_id, device_id)) // 8
        return DeviceProgress(
            device=device_id,
            round=round_id,
            highest=highest,
            gaps=await self.gaps(round_id, device_id),
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
        tube = _tube_code(o.tube)
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

    async def _claims(self, device: Device, round_id: str, items: list[_Op]) -> dict[str, bool]:
        """Take the ever-opened claim of each tube the batch opens.

        A claim is its own step (another slot), so it is taken only for opens
        whose sequence number has no op record yet: a retry, a reused op id or
        a sequence conflict never claims a tube (the script answers those from
        the record without looking at the claim).
        """
        opens = [i for i in items if i.kind == "open"]
        if not opens:
            return {}
        log = keys.oplog(round_id, device.id)
        reads = [("GETRANGE", log, (i.seq - 1) * 8, i.seq * 8 - 1) for i in opens]
        if self._lane is not None:
            records = await self._lane.execute(*reads)
        else:
            pipe = self._redis.pipeline(transaction=False)
            for _, key, start, end in reads:
                pipe.getrange(key, start, end)
            records = await pipe.execute()
        held: dict[str, bool] = {}
        for i, record in zip(opens, records, strict=True):
            if i.tube in held or record.strip(b"\0"):
                continue
            claim = [keys.tube_claim(i.tube)], [i.tube, round_id]
            if self._lane is not None:
                got = (await self._lane.evalsha(source(_PKG, "claim.lua"), *claim))[0]
            else:
                got = await self._scripts.run(_CLAIM_LUA, *claim)
            held[i.tube] = bool(got)
        return held

    async def _apply(self, device: Device, round_id: str, items: list[_Op]) -> list[OpResult]:
        # A grid team binds too: residents sampled at home, at their door (sampling.lab.doorlog).
        if device.role not in ("scanner", "admin", "grid"):
            raise Forbidden(f"a {device.role} device cannot bind tubes")
        if round_id not in self._known:
            await self._round(round_id)  # NotFound for an unknown round, before any claim
        claims = await self._claims(device, round_id, items)
        ks = [
            keys.meta(round_id),
            keys.count(round_id),
            keys.journal(round_id),
            keys.oplog(round_id, device.id),
            keys.revoked(round_id),
            *keys.activity(round_id),
            # Read only, to let a re-sample whose tube failed be tried again.
            lab_keys.result(round_id),
            boxing_keys.lost(round_id),
        ]
        args: list[bytes | str | int] = [device.id, device.site, SEQ_AHEAD, SEQ_MAX]
        for i in items:
            tkey = keys.tube(round_id, i.tube)
            if i.rhash:
                ks += [
                    tkey,
                    keys.resident_bucket(round_id, i.rhash),
                    keys.risk_bucket(round_id, i.rhash),
                ]
            else:
                ks += [tkey, tkey, tkey]
            cap = f"{i.capacity}:{int(claims.get(i.tube, False))}" if i.kind == "open" else "0"
            args += [
                i.seq,
                _fingerprint(i),
                i.op,
                i.kind,
                i.tube,
                codes.tube_number(i.tube),
                cap,
                i.purpose,
                i.rhash,
                i.clock,
            ]
        reply = await self._run_apply(ks, args)
        if reply and reply[0] == b"revoked":
            raise Refusal("token_revoked", "this device's token was revoked", 401)
        if reply and reply[0] == b"round_not_found":
            raise RoundNotFound(f"no round {round_id}: check the round id", round=round_id)
        out: list[OpResult] = []
        for n, i in enumerate(items):
            status = reply[4 * n].decode()
            aux, closed, replayed = (int(x) for x in reply[4 * n + 1 : 4 * n + 4])
            clock = _CLOCKS.get(i.clock, "device")
            if status != "ok":
                message = await self._explain(round_id, status, i, aux)
            else:
                message = UNTRUSTED_CLOCK if clock == "untrusted" else ""
            out.append(
                OpResult(
                    seq=i.seq,
                    op=i.op,
                    kind=i.kind,
                    tube=i.tube,
                    status=status,
                    message=message,
                    count=aux,
                    closed=bool(closed),
                    replayed=bool(replayed),
                    clock=clock,
                )
            )
        return out

    async def _run_apply(self, ks: list[str], args: list[bytes | str | int]) -> list[bytes]:
        if self._lane is not None:
            reply: list[bytes] = await self._lane.script(
                source(_PKG, "apply.lua"), ks, args, waitaof=self._waitaof
            )
            return reply
        if not self._waitaof:
            result: list[bytes] = await self._scripts["apply"](keys=ks, args=args)
            return result
        # WAITAOF must follow the write on the same connection: one pipeline,
        # one round trip. numlocal=1: the local AOF fsync is what we promise.
        # On a cluster the pipeline goes to the node that owns the round's slot
        # (a cluster pipeline refuses scripts, and WAITAOF has no key to route by).
        client: Any = self._redis
        if isinstance(client, RedisCluster):
            node = client.get_node_from_key(ks[0])
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
        pipe = client.pipeline(transaction=False)
        await self._scripts["apply"](keys=ks, args=args, client=pipe)
        pipe.execute_command("WAITAOF", 1, 0, 1000)
        reply, (local, _) = await pipe.execute()
        if int(local) < 1:
            raise NotDurable
        return list(reply)

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

    def shutdown(self) -> None:
        if self._lane is not None:
            self._lane.close()

    # -- reads and flags -------------------------------------------------------------

    async def tube(self, round_id: str, tube: str) -> Tube:
        code = check_code(tube, codes.CodeKind.TUBE, "tube")
        raw = await self._redis.get(keys.tube(round_id, code))
        if raw is None:
            raise TubeNotFound(f"tube {code} was not opened in round {round_id}", tube=code)
        return TubeRecord(as_bytes(raw)).view(round_id, code)

    async def set_risk(self, round_id: str, update: RiskUpdate) -> int:
        await self._rounds.get(round_id)
        pipe = self._redis.pipeline(transaction=False)
        hashes = [
            (
                self._hasher.digest(check_code(r.resident, codes.CodeKind.RESIDENT, "resident")),
                "".join(sorted(set(r.flags))),
            )
            for r in update.residents
        ]
        for rhash, flags in hashes:
            key = keys.risk_bucket(round_id, rhash)
            if flags:
                pipe.hset(key, rhash[1:], flags)
            else:
                pipe.hdel(key, rhash[1:])
        await pipe.execute()
        return len(hashes)
