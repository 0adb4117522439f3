"""What one handheld does with its queue of residents, as a resumable script.

A handheld's script is a generator: it yields the next :class:`Request` and is sent
the :class:`Answer`. Nothing advances until an answer is in, so when Locust
stops a user mid-request (the load shape tapering after the surge) the handheld goes
back to its worker's pool with that request still pending, and whoever picks the
handheld up sends the very same operation again (same op id, same seq): the service
replays the answer if the first one had applied.

Online handhelds open a tube, scan ten residents (the tube closes itself when
full), and close the last tube by hand. Risk residents go alone into tubes of one.
The field's mistakes happen at fixed rates: a garbled read (refused before it
reaches Redis, so its seq is used again), a resident scanned twice (refused, the
answer names where), and a misread undone at once and scanned again.

Offline handhelds queue the same operations without answers and upload them in
batches of up to 500 when the network comes back; some upload a batch twice
(the answer to the first upload was lost), and the second upload must be a
replay of the first.

An *outage* (``sampling loadtest --outage``) cuts the network of chosen handhelds'
handhelds for a while: an online handheld then keeps scanning at its pace, queues
its operations (op id, seq, as it would send them) and decides for itself when a
tube is full, and when its network comes back it uploads the queue through the
offline batch API, at most ``BATCH`` operations at a time in sequence order, as
the real handheld page does, before it sends anything else. An offline handheld
holds its uploads until then.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sampling import codes

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from loadtest.plan import Handheld

GARBLE = 0.01
DUPLICATE = 0.005
UNDO = 0.01
TWICE = 0.3
POOL = 10
BATCH = 500


@dataclass
class Request:
    method: str
    #: Path under ``/v1/rounds/<round>``.
    path: str
    body: dict[str, Any] | None
    name: str
    #: Ledger fields of each operation the request carries.
    entries: list[dict[str, Any]] = field(default_factory=list)
    #: Answers that are the expected outcome (refusals we provoked on purpose).
    expected: tuple[int, ...] = (200, 201)
    upload: int = 0
    #: Operations in this batch that were queued while the handheld's network was cut.
    outage_ops: int = 0
    #: With ``method`` empty: no request at all, the handheld only lets time pass
    #: (its network is cut): ``pause`` seconds, or the pace between operations.
    pause: float | None = None


def no_network(pause: float | None = None) -> Request:
    """A step of a script that sends nothing: the network is cut."""
    return Request("", "", None, "no network", pause=pause)


@dataclass
class Outage:
    """When one handheld's network is cut: ``start`` to ``end``, wall-clock seconds
    (``end`` includes the handheld's own delay in reconnecting)."""

    start: float
    end: float

    def cut(self, now: float) -> bool:
        return self.start <= now < self.end


@dataclass
class Answer:
    http: int
    body: Any
    attempts: int = 1
    lost: int = 0
    shed: int = 0


def garble(code: str) -> str:
    """The code with its check character wrong, as a glare-damaged read gives it."""
    last = code[-1]
    return code[:-1] + ("0" if last != "0" else "1")


class Resumable:
    """A script of requests that pauses for each answer: the pending request is sent
    again until it is answered, then the script resumes with the answer."""

    script: Generator[Request, Answer, None]

    def __init__(self) -> None:
        self.pending: Request | None = None
        self.answer: Answer | None = None
        self.done = False

    def next(self) -> Request | None:
        """The request to send now: the pending one again, or the script's next."""
        if self.pending is not None:
            return self.pending
        if self.done:
            return None
        try:
            self.pending = (
                next(self.script) if self.answer is None else self.script.send(self.answer)
            )
        except StopIteration:
            self.done = True
            return None
        return self.pending

    def answered(self, answer: Answer) -> None:
        self.pending = None
        self.answer = answer


class HandheldRun(Resumable):
    """A handheld in progress: its counters, its script, and the request awaiting an answer."""

    def __init__(
        self,
        handheld: Handheld,
        on_closed: Any = None,
        outage: Outage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.handheld = handheld
        self.outage, self.clock = outage, clock
        #: Operations queued while the network was cut, not yet uploaded.
        self.queue: list[dict[str, Any]] = []
        #: Tubes that closed themselves (full) inside the queue: (tube, count).
        self.queued_full: list[tuple[str, int]] = []
        self.outage_ops = 0
        #: Operations queued in the outage wait for an upload (or are being uploaded).
        self.held = False
        self.device, self.token = handheld.device, handheld.token
        self.role = "offline" if handheld.offline else "online"
        self.seq = 0
        self.tubes = 0
        self.rng = random.Random(handheld.seed)
        self.on_closed = on_closed or (lambda site, tube, count: None)
        self.script = self._offline() if handheld.offline else self._online()
        self.scanned = 0

    # -- helpers -----------------------------------------------------------------

    def _op(self, kind: str, tube: str, **extra: Any) -> dict[str, Any]:
        self.seq += 1
        return {
            "op": f"{self.handheld.device}-{self.seq}",
            "seq": self.seq,
            "kind": kind,
            "tube": tube,
            **extra,
        }

    def _tube(self) -> str:
        self.tubes += 1
        return codes.make_tube(self.handheld.tube_base + self.tubes)

    def _entry(self, op: dict[str, Any]) -> dict[str, Any]:
        return {
            "d": self.handheld.device,
            "seq": op["seq"],
            "op": op["op"],
            "k": op["kind"],
            "t": op["tube"],
            "r": op.get("resident", ""),
        }

    def _cut(self) -> bool:
        return self.outage is not None and self.outage.cut(self.clock())

    def uploadable(self) -> bool:
        """Queued operations wait and the network is back: the handheld uploads them
        whether or not its sampler is working at the moment."""
        return self.held and not self._cut()

    def _await_network(self) -> Generator[Request, Answer, None]:
        while self._cut():
            assert self.outage is not None
            yield no_network(min(1.0, max(0.05, self.outage.end - self.clock())))

    def _queue(self, op: dict[str, Any]) -> Generator[Request, Answer, None]:
        """Queue an operation with the network cut; the sampler's pace goes on."""
        self.queue.append(op)
        self.outage_ops += 1
        self.held = True
        yield no_network()

    def _drain(self) -> Generator[Request, Answer, dict[str, int]]:
        """Upload the outage queue, ``BATCH`` at a time; the count of each tube after it."""
        counts: dict[str, int] = {}
        queue, self.queue = self.queue, []
        for start in range(0, len(queue), BATCH):
            chunk = queue[start : start + BATCH]
            ans = yield from self._upload(chunk, len(chunk))
            if ans.http == 200:
                for res in ans.body["results"]:
                    if res["status"] == "ok":
                        counts[res["tube"]] = res["count"]
        for tube, count in self.queued_full:
            self.on_closed(self.handheld.site, tube, counts.get(tube, count))
        self.queued_full = []
        self.held = False
        return counts

    def _upload(
        self, chunk: list[dict[str, Any]], outage_ops: int
    ) -> Generator[Request, Answer, Answer]:
        """POST queued ops as one offline batch, now and then twice (a handheld that
        lost the answer sends it again); the first upload's answer."""
        body = {"ops": [{k: v for k, v in o.items() if v is not None} for o in chunk]}
        entries = [self._entry(o) for o in chunk]
        uploads = 2 if self.rng.random() < TWICE else 1
        first: Answer | None = None
        for up in range(1, uploads + 1):
            ans = yield Request(
                "POST",
                "/batches",
                body,
                "offline batch",
                entries,
                upload=up,
                outage_ops=outage_ops if up == 1 else 0,
            )
            if first is None:
                first = ans
        assert first is not None
        return first

    def _single(self, op: dict[str, Any], expected: tuple[int, ...] = (200, 201)) -> Request:
        kind, tube = op["kind"], op["tube"]
        body = {k: v for k, v in op.items() if k not in ("kind", "tube")}
        path, name = {
            "open": ("/tubes", "open tube"),
            "scan": (f"/tubes/{tube}/scans", "scan"),
            "undo": (f"/tubes/{tube}/undo", "undo"),
            "close": (f"/tubes/{tube}/close", "close tube"),
        }[kind]
        if kind == "open":
            body["tube"] = tube
        return Request("POST", path, body, name, [self._entry(op)], expected)

    # -- scripts ---------------------------------------------------------------------

    def _online(self) -> Generator[Request, Answer, None]:
        site = self.handheld.site
        risky = [code for code, flags in self.handheld.residents if flags]
        pooled = [code for code, flags in self.handheld.residents if not flags]
        for code in risky:
            tube = self._tube()
            if self._cut():
                yield from self._queue(self._op("open", tube, capacity=1))
                yield from self._queue(self._op("scan", tube, resident=code))
                self.queued_full.append((tube, 1))
                self.scanned += 1
                continue
            if self.queue:
                yield from self._drain()
            yield self._single(self._op("open", tube, capacity=1))
            ans = yield self._single(self._op("scan", tube, resident=code))
            self.scanned += 1
            if ans.http == 200 and ans.body.get("closed"):
                self.on_closed(site, tube, 1)
        tube, count, done_codes = "", 0, []
        for code in pooled:
            if self._cut():
                # No answers: the handheld counts the tube itself (a garbled read is
                # caught by its own check-character test and read again).
                if not tube:
                    tube, count = self._tube(), 0
                    yield from self._queue(self._op("open", tube))
                if self.rng.random() < DUPLICATE and done_codes:
                    again = self.rng.choice(done_codes)
                    yield from self._queue(self._op("scan", tube, resident=again))
                yield from self._queue(self._op("scan", tube, resident=code))
                self.scanned += 1
                count += 1
                done_codes.append(code)
                if self.rng.random() < UNDO and count < POOL:
                    yield from self._queue(self._op("undo", tube, resident=code))
                    yield from self._queue(self._op("scan", tube, resident=code))
                if count >= POOL:
                    self.queued_full.append((tube, count))
                    tube = ""
                continue
            if self.queue:
                counts = yield from self._drain()
                count = counts.get(tube, count) if tube else count
            if not tube:
                tube, count = self._tube(), 0
                yield self._single(self._op("open", tube))
            roll = self.rng.random()
            if roll < GARBLE:
                misread = self._op("scan", tube, resident=garble(code))
                misread["op"] += "-misread"
                ans = yield self._single(misread, (400,))
                if ans.http == 400:
                    self.seq -= 1  # refused before anything was written: the seq is free
            elif roll < GARBLE + DUPLICATE and done_codes:
                again = self.rng.choice(done_codes)
                yield self._single(self._op("scan", tube, resident=again), (409,))
            ans = yield self._single(self._op("scan", tube, resident=code))
            self.scanned += 1
            if ans.http != 200:
                continue
            count = ans.body["count"]
            done_codes.append(code)
            if self.rng.random() < UNDO:
                # A misread noticed at once: undo it, then scan the resident properly.
                yield self._single(self._op("undo", tube, resident=code))
                ans = yield self._single(self._op("scan", tube, resident=code))
                count = ans.body.get("count", count) if ans.http == 200 else count
            if ans.http == 200 and ans.body.get("closed"):
                self.on_closed(site, tube, count)
                tube = ""
        if tube and count:
            if self._cut() or self.queue:
                yield from self._queue(self._op("close", tube))
                self.queued_full.append((tube, count))
            else:
                ans = yield self._single(self._op("close", tube))
                if ans.http == 200:
                    self.on_closed(site, tube, count)
        if self.queue or self.queued_full:
            yield from self._await_network()
            yield from self._drain()

    def _offline(self) -> Generator[Request, Answer, None]:
        """Work through the queue without a network; upload when it comes back."""
        queue: list[dict[str, Any]] = []
        #: tube -> scans queued for it (closed tubes are handed to the sealer after upload)
        fills: dict[str, int] = {}
        closes: list[str] = []
        tube, count = "", 0
        residents = [code for code, flags in self.handheld.residents if flags]
        pooled = [code for code, flags in self.handheld.residents if not flags]
        for code in residents:
            t = self._tube()
            queue += [self._op("open", t, capacity=1), self._op("scan", t, resident=code)]
            fills[t] = 1
            closes.append(t)
        done_codes: list[str] = []
        for code in pooled:
            if not tube:
                tube, count = self._tube(), 0
                queue.append(self._op("open", tube))
            if self.rng.random() < DUPLICATE and done_codes:
                queue.append(self._op("scan", tube, resident=self.rng.choice(done_codes)))
            queue.append(self._op("scan", tube, resident=code))
            count += 1
            fills[tube] = count
            done_codes.append(code)
            if self.rng.random() < UNDO and count < POOL:
                queue.append(self._op("undo", tube, resident=code))
                queue.append(self._op("scan", tube, resident=code))
            if count >= POOL:
                closes.append(tube)
                tube = ""
        if tube and count:
            queue.append(self._op("close", tube))
            closes.append(tube)
        # Uploads: the network comes back every few hundred operations (not before
        # the end of an outage that cuts this handheld too).
        held = len(queue) if self._cut() else 0
        self.outage_ops += held
        self.held = bool(held)
        start = 0
        while start < len(queue):
            yield from self._await_network()
            size = min(BATCH, self.rng.randint(50, 400))
            chunk = queue[start : start + size]
            start += size
            # A batch must not end between an open and its first scan: no matter, the
            # service takes the ops in order either way; the chunk is sent as queued.
            ans = yield from self._upload(chunk, len(chunk) if held else 0)
            self.scanned += sum(o["kind"] == "scan" for o in chunk)
            if ans.http == 200:
                closed_now = {t for t in closes if t in {o["tube"] for o in chunk}}
                for t in sorted(closed_now):
                    # a tube is closed once its last op has been uploaded
                    last = max(n for n, o in enumerate(queue) if o["tube"] == t)
                    if last < start:
                        self.on_closed(self.handheld.site, t, fills[t])
                        closes.remove(t)
        for t in closes:  # tubes whose last op was in an earlier chunk
            self.on_closed(self.handheld.site, t, fills[t])
