"""Lab results over HL7 v2 MLLP: the listener a lab system's interface engine sends to.

Each MLLP block is one ORU^R01 message. It is read by the same parser as a file
(:func:`sampling.lab.parse.read_message`), checked by the same lab rule as the API
(:func:`sampling.lab.results.check_lab_device`, for the registered lab device the
feed speaks for) and stored by the same script (:meth:`LabResults.ingest`). Every
message gets an ACK built by the ``hl7`` library from the message itself (its own
separators): ``AA`` when every result is stored (or was already, identically);
``AE`` when a result was refused, held or had no bound tube, with the reasons in
MSA-3 and an ERR segment; ``AR`` when the message itself is refused (not
ORU^R01, no control id, not this feed's lab, no open round).

A retransmission (same sender device and MSH-10 control id) is answered with the
first answer and stores nothing again: the answer is kept in the round's
``mllp`` hash (:func:`sampling.lab.keys.mllp`). A transient failure (Redis
unreachable) is answered ``AE`` and not kept, so the sender's retry is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import hl7
import hl7.mllp
from redis.exceptions import RedisError

from sampling.errors import Forbidden, NotFound
from sampling.lab import keys
from sampling.lab.parse import Parsed, control_id, messages, read_message
from sampling.lab.results import LabResults, check_lab_device, holder
from sampling.store.client import as_bytes

if TYPE_CHECKING:
    from sampling.auth.devices import Devices
    from sampling.binding.rounds import Rounds
    from sampling.lab.models import IngestReport
    from sampling.settings import Settings
    from sampling.store.client import AnyRedis

log = logging.getLogger(__name__)

#: The longest MLLP block read (a message of a few hundred results fits easily).
LIMIT: Final = 1 << 20
_APP: Final = "SAMPLING"
#: HL7 table 0357 error codes used in ERR-3.
_ERR: Final = {
    "AR": ("200", "Unsupported message type"),
    "AE": ("207", "Application internal error"),
}
_FALLBACK: Final = "MSH|^~\\&|||||||ORU^R01|UNKNOWN|P|2.5.1"


@dataclass(frozen=True)
class Answer:
    code: str  # AA, AE or AR
    text: str


def _summary(report: IngestReport) -> Answer:
    reasons = [f"row {p.row}: {p.reason}" for p in report.problems]
    for row in report.rows:
        if row.status == "held":
            reasons.append(f"tube {row.tube} held for review: disagrees with its stored result")
        elif row.status == "orphan":
            reasons.append(f"tube {row.tube} was not bound in round {report.round}: queued")
    if reasons:
        return Answer("AE", "; ".join(reasons)[:400])
    done = f"{report.stored} stored, {report.duplicate} already stored"
    return Answer("AA", f"round {report.round}: {done}")


def ack(msg: hl7.Message | None, answer: Answer, message_id: str) -> str:
    """The ACK for ``msg`` (in its own separators), MSA-3 and ERR carrying the reason."""
    if msg is None:
        msg = hl7.parse(_FALLBACK)
    out = msg.create_ack(answer.code, message_id=message_id, application=_APP)
    out.segment("MSA").assign_field(msg.escape(answer.text), 3)
    if answer.code != "AA":
        code, name = _ERR[answer.code]
        err = out.create_segment([out.create_field(["ERR"])])
        err.assign_field(code, 3, 1, 1)
        err.assign_field(name, 3, 1, 2)
        err.assign_field("HL70357", 3, 1, 3)
        err.assign_field("E", 4)
        err.assign_field(msg.escape(answer.text), 8)
        out.append(err)
    return str(out)


def _decode(block: bytes) -> str:
    # UTF-8 is HL7's preferred charset; Chinese lab systems often send GB18030 (MSH-18).
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("gb18030", errors="replace")


class Listener:
    """Answers the MLLP messages of one lab feed (one registered lab device)."""

    def __init__(
        self,
        redis: AnyRedis,
        devices: Devices,
        rounds: Rounds,
        lab: LabResults,
        *,
        device_id: str,
        round_id: str = "",
    ) -> None:
        self._redis = redis
        self._devices = devices
        self._rounds = rounds
        self._lab = lab
        self._device_id = device_id
        self._round_id = round_id
        self._acks = 0
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> asyncio.Server:
        server: asyncio.Server = await hl7.mllp.start_hl7_server(
            self._client, host, port, limit=LIMIT
        )
        return server

    async def close(self) -> None:
        """End every open connection (the server itself is closed by its owner)."""
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)

    async def _client(
        self, reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    return  # the sender hung up
                except (hl7.mllp.InvalidBlockError, ValueError) as exc:
                    log.warning("MLLP: dropping a connection that sent a bad block: %s", exc)
                    return
                writer.writeblock((await self.answer(block)).encode("utf-8"))
                await writer.drain()
        except ConnectionError:
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _next_id(self) -> str:
        self._acks += 1
        return f"{_APP}-{self._acks}"

    async def answer(self, block: bytes) -> str:
        """The ACK text for one MLLP block."""
        text = _decode(block)
        try:
            found = messages(text)
        except (hl7.HL7Exception, ValueError, IndexError) as exc:
            return ack(None, Answer("AR", f"not an HL7 message ({exc})"), self._next_id())
        if len(found) != 1:
            why = "no HL7 message in the block" if not found else "one message per MLLP block"
            return ack(None, Answer("AR", why), self._next_id())
        msg = found[0]
        return ack(msg, await self._apply(msg), self._next_id())

    async def _apply(self, msg: hl7.Message) -> Answer:
        msh = msg.segment("MSH")
        kind = (str(msh.extract_field(1, 9, 1, 1)), str(msh.extract_field(1, 9, 1, 2)))
        if kind != ("ORU", "R01"):
            return Answer("AR", f"only ORU^R01 results are taken here, not {'^'.join(kind)}")
        control = control_id(msg)
        if not control:
            return Answer("AR", "MSH-10 (message control id) is missing")
        try:
            round_id = await self._round()
            field = f"{self._device_id}|{control}"
            seen = await self._redis.hget(keys.mllp(round_id), field)
            if seen is not None:
                code, _, why = as_bytes(seen).decode().partition("|")
                return Answer(code, why)
            answer = await self._ingest(round_id, msg)
            packed = f"{answer.code}|{answer.text}"
            # The first answer kept wins: a retransmission racing this one gets it too.
            if not await self._redis.hsetnx(keys.mllp(round_id), field, packed):
                kept = await self._redis.hget(keys.mllp(round_id), field)
                if kept is not None:
                    code, _, why = as_bytes(kept).decode().partition("|")
                    return Answer(code, why)
        except _Refused as exc:
            return Answer("AR", str(exc))
        except (RedisError, OSError) as exc:
            return Answer("AE", f"results store unavailable, send again ({type(exc).__name__})")
        return answer

    async def _round(self) -> str:
        if self._round_id:
            try:
                await self._rounds.get(self._round_id)
            except NotFound as exc:
                raise _Refused(str(exc)) from exc
            return self._round_id
        open_rounds = [r for r in await self._rounds.all() if r.state == "open"]
        if not open_rounds:
            raise _Refused("no round is open: results cannot be stored")
        return open_rounds[-1].id  # the latest created

    async def _ingest(self, round_id: str, msg: hl7.Message) -> Answer:
        try:
            device = await self._devices.get(self._device_id)
        except NotFound as exc:
            raise _Refused(f"this feed's device {self._device_id} is not registered") from exc
        if device.revoked:
            raise _Refused(f"this feed's device {self._device_id} was revoked")
        parsed = Parsed()
        read_message(msg, parsed, lab=device.lab)
        try:
            check_lab_device(device, parsed)
        except Forbidden as exc:
            raise _Refused(str(exc)) from exc
        report = await self._lab.ingest(round_id, parsed, device=device.id, holder=holder(device))
        return _summary(report)


class _Refused(Exception):
    """The message is refused as a whole (AR)."""


class Running:
    """An MLLP listener on its own event loop in a background thread (``sampling serve``
    runs the API under uvicorn in the foreground)."""

    def __init__(
        self,
        settings: Settings,
        url: str,
        *,
        host: str,
        port: int,
        device_id: str,
        round_id: str = "",
    ) -> None:
        self._args = (settings, url, host, port, device_id, round_id)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="mllp", daemon=True)

    def start(self, timeout: float = 10.0) -> Running:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the MLLP listener did not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as exc:  # reported to start() and logged, not hidden
            self._error = exc
            log.exception("MLLP listener stopped")
        finally:
            self._ready.set()
            self._loop.close()

    async def _serve(self) -> None:
        from sampling.auth.devices import Devices
        from sampling.binding.rounds import Rounds
        from sampling.store.client import from_settings

        settings, url, host, port, device_id, round_id = self._args
        redis = from_settings(settings, url)
        lab = LabResults(redis, waitaof=settings.durability == "waitaof")
        try:
            listener = Listener(
                redis, Devices(redis), Rounds(redis), lab, device_id=device_id, round_id=round_id
            )
            server = await listener.start(host, port)
            self._ready.set()
            async with server:
                await self._stop.wait()
                await listener.close()
        finally:
            await lab.aclose()
            await redis.aclose()
