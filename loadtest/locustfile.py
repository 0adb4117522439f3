"""The round as people live it, for Locust (run it through ``python -m loadtest``).

Users, by role: :class:`Sampler` (online handhelds), :class:`NetworkDropSampler`
(handhelds whose network drops, uploading offline batches), :class:`Sealer`,
:class:`Courier`, :class:`LabDesk` (boxing, custody and intake; present only when
the service has the boxing routes), and :class:`Viewer` (the command centre
reading counters). :class:`RoundDay` is the load shape: a working day squeezed
into ``LT_DAY`` seconds with the 9 a.m. surge, held at the afternoon level after
the day until every handheld is done; then the run stops.

Work is dealt per Locust worker (``plan/worker-<index>.json``); inside a worker,
users take whole jobs (a handheld, a box) from a pool and put them back unfinished if
Locust stops them, so the round completes with any number of users. Each answer
goes to the worker's ledger (``ledger.py``). A worker with nothing left tells the
master (message ``lt_done``); the shape ends the run when every worker has.

Requests turned away with 429/503 wait ``Retry-After`` and go again unchanged;
requests with no answer (timeout, dropped connection) go again unchanged after a
backoff. The answer to a retried operation is the service's replay.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, argument_parser, between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.runners import MasterRunner, WorkerRunner

from loadtest.chain import BoxJob, IntakeJob, Job, PickupJob, ResultsJob, Seq, box_code
from loadtest.handhelds import Answer, HandheldRun, Outage, Request
from loadtest.ledger import Ledger
from loadtest.plan import WorkerPlan, load_worker

# A Locust worker handling a spawn message builds the whole argument parser once
# per option the master sent (runners.py calls default_args_dict() inside a
# comprehension): with the day's shape changing the user count every second that
# was a third of a worker's CPU in a profile of a 200,000-resident run. The
# defaults cannot change inside a process, and both callers only read the dict.
argument_parser.default_args_dict = functools.cache(argument_parser.default_args_dict)


def _env(name: str, default: str) -> str:
    return os.environ.get("LT_" + name, default)


RUN = Path(_env("RUN", "."))
WORKERS = int(_env("WORKERS", "1"))
PACE = float(_env("PACE", "0.1"))
BOXING = _env("BOXING", "1") == "1"
BOX_TUBES = int(_env("BOX_TUBES", "30"))
#: Attempts without any answer (timeouts, 5xx) before an operation is given up.
MAX_LOST = int(_env("MAX_LOST", "30"))
LAB_RESULTS = _env("LAB", "1") == "1"
#: Sealers and lab desks per Locust worker (couriers and lab systems: a quarter as
#: many): a tube is 11 sampler requests and ~2 for the chain, so the chain gets
#: about a tenth of the samplers at the surge (set by the command).
CHAIN_USERS = int(_env("CHAIN_USERS", "1"))
CHAIN = ("sealer", "courier", "lab", "labsys")
#: The outage (``--outage``): seconds the network of the plan's cut handhelds is down,
#: starting ``OUTAGE_AT`` seconds into the run; each handheld reconnects within
#: ``RECONNECT`` seconds after it ends.
OUTAGE = float(_env("OUTAGE", "0"))
OUTAGE_AT = float(_env("OUTAGE_AT", "0"))
RECONNECT = 10.0


class GaveUp(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__("no answer")
        self.answer = answer


HANDHELDS = ("online", "offline")


def _pick(devices: list[tuple[str, str]], n: int) -> tuple[str, str]:
    """The device (id, token) that handles box number ``n``: spread evenly, fixed per box."""
    return devices[n % len(devices)]


def _serial(box: str) -> int:
    """Box codes are ``B`` + serial + check digit; the serial picks the box's devices."""
    return int(box[1:-1])


class Work:
    """One worker's share of the round: jobs by device, who holds which device."""

    def __init__(self, plan: WorkerPlan, environment: Any) -> None:
        self.plan, self.environment = plan, environment
        self.round = plan.round_id
        self.ledger = Ledger(RUN / "ledger", plan.index)
        self.queues: dict[str, deque[Any]] = {}
        self.role: dict[str, str] = {}
        self.ready: dict[str, deque[str]] = {r: deque() for r in (*HANDHELDS, *CHAIN)}
        self.readyset: set[str] = set()
        self.busy: dict[str, Any] = {}
        self.seqs: dict[str, Seq] = {}
        self.closed: dict[str, list[tuple[str, int]]] = {s: [] for s in plan.sealers}
        self.site_handhelds: dict[str, int] = {s: 0 for s in plan.sealers}
        self.handhelds_left = len(plan.handhelds)
        self.boxes = 0
        self.failed = 0
        self.reported = False
        self.started = time.time()
        #: With an outage: the single scans of handhelds that stayed online and the
        #: uploads of what the cut ones queued, with their times (``surge.py`` reads it).
        self.surge: Ledger | None = None
        if OUTAGE:
            self.surge = Ledger(RUN / "surge", plan.index)
        cut_from = self.started + OUTAGE_AT
        for handheld in plan.handhelds:
            self.site_handhelds[handheld.site] += 1
            outage = None
            if OUTAGE and handheld.outage:
                back = random.Random(handheld.seed).uniform(0.0, RECONNECT)
                outage = Outage(cut_from, cut_from + OUTAGE + back)
            self.add(HandheldRun(handheld, self._tube_closed, outage))

    # -- the job pool --------------------------------------------------------------

    def add(self, job: Any) -> None:
        self.role[job.device] = job.role
        self.queues.setdefault(job.device, deque()).append(job)
        self._ready(job.device)

    def _ready(self, device: str) -> None:
        if device not in self.busy and device not in self.readyset and self.queues[device]:
            self.ready[self.role[device]].append(device)
            self.readyset.add(device)

    def claim(self, roles: tuple[str, ...]) -> Any:
        for role in roles:
            if self.ready[role]:
                device = self.ready[role].popleft()
                self.readyset.discard(device)
                job = self.queues[device].popleft()
                self.busy[device] = job
                return job
        return None

    def claim_upload(self) -> Any:
        """A handheld whose outage queue waits for its upload, network back, nobody on it."""
        for role in HANDHELDS:
            for device in self.ready[role]:
                job = self.queues[device][0]
                if isinstance(job, HandheldRun) and job.uploadable():
                    self.ready[role].remove(device)
                    self.readyset.discard(device)
                    self.busy[device] = self.queues[device].popleft()
                    return job
        return None

    def release(self, job: Any) -> None:
        del self.busy[job.device]
        if not job.done:
            self.queues[job.device].appendleft(job)
        elif isinstance(job, HandheldRun):
            self.handhelds_left -= 1
            site = job.handheld.site
            self.site_handhelds[site] -= 1
            if self.site_handhelds[site] == 0:
                self._box(site, force=True)
        self._ready(job.device)

    def idle(self) -> bool:
        return (
            not self.busy
            and not self.readyset
            and self.handhelds_left == 0
            and not any(self.closed.values())
        )

    # -- the chain: closed tubes -> boxes -> courier -> lab ------------------------------

    def _seq(self, device: str) -> Seq:
        return self.seqs.setdefault(device, Seq())

    def _tube_closed(self, site: str, tube: str, count: int) -> None:
        if BOXING:
            self.closed[site].append((tube, count))
            self._box(site)

    def _box(self, site: str, force: bool = False) -> None:
        tubes = self.closed.get(site, [])
        while len(tubes) >= BOX_TUBES or (force and tubes):
            take, tubes[:] = tubes[:BOX_TUBES], tubes[BOX_TUBES:]
            self.boxes += 1
            device, token = self.plan.sealers[site]
            code = box_code(self.plan.box_base + self.boxes)
            self.add(
                BoxJob(
                    device,
                    token,
                    self._seq(device),
                    code,
                    take,
                    _pick(self.plan.couriers, _serial(code))[0],
                    self._handed,
                )
            )

    def _handed(self, box: str, tubes: list[tuple[str, int]]) -> None:
        # The courier named at the handover is the one who must pick the box up.
        device, token = _pick(self.plan.couriers, _serial(box))
        self.add(PickupJob(device, token, self._seq(device), box, tubes, self._picked))

    def _picked(self, box: str, tubes: list[tuple[str, int]]) -> None:
        device, token = _pick(self.plan.labs, _serial(box))
        self.add(IntakeJob(device, token, self._seq(device), box, tubes, self._taken_in))

    def _taken_in(self, box: str, tubes: list[tuple[str, int]]) -> None:
        if LAB_RESULTS and self.plan.labsys:
            device, token = _pick(self.plan.labsys, _serial(box))
            self.add(
                ResultsJob(
                    device, token, self._seq(device), box, tubes, self.plan.box_base + self.boxes
                )
            )

    # -- the ledger ----------------------------------------------------------------------

    def record(self, req: Request, ans: Answer) -> None:
        extra = {"a": ans.attempts, "lost": ans.lost, "shed": ans.shed, "h": ans.http}
        if req.upload:
            extra["up"] = req.upload
        body = ans.body if isinstance(ans.body, dict) else {}
        if req.path == "/batches" and ans.http == 200:
            for entry, res in zip(req.entries, body["results"], strict=True):
                self.ledger.write(
                    **entry, s=res["status"], n=res["count"], rp=res["replayed"], **extra
                )
            return
        if 200 <= ans.http < 300:
            status, count, replayed = (
                "ok",
                body.get("count", body.get("tubes", 0)),
                bool(body.get("replayed")),
            )
            if "stored" in body:  # a results upload: rows stored now or already
                count = body["stored"] + body.get("duplicate", 0)
        else:
            status, count, replayed = str(body.get("code", f"http_{ans.http}")), 0, False
        for entry in req.entries:
            self.ledger.write(**entry, s=status, n=count, rp=replayed, **extra)

    def unanswered(self) -> None:
        """At the end of a run cut short: what was sent and never answered."""
        for job in [*self.busy.values(), *(j for q in self.queues.values() for j in q)]:
            if job.pending is not None:
                for entry in job.pending.entries:
                    self.ledger.write(**entry, s="unknown", n=0, rp=False, a=0, lost=0, shed=0, h=0)

    def report(self) -> None:
        if self.reported:
            return
        self.reported = True
        self.ledger.flush()
        if self.surge is not None:
            self.surge.flush()
        self.environment.runner.send_message(
            "lt_done",
            {
                "worker": self.plan.index,
                "ledger_lines": self.ledger.lines,
                "boxes": self.boxes,
                "abandoned_jobs": self.failed,
                "seconds": round(time.time() - self.started, 1),
            },
        )


_work: Work | None = None


def work_for(environment: Any) -> Work:
    global _work
    if _work is None:
        runner = environment.runner
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        _work = Work(load_worker(RUN / "plan", index), environment)
    return _work


@events.test_stop.add_listener
def _flush(environment: Any, **_: Any) -> None:
    if _work is not None:
        if not _work.idle():
            _work.unanswered()
        _work.ledger.close()
        if _work.surge is not None:
            _work.surge.close()


# -- the master: who is done, and the shape --------------------------------------------

_done: dict[int, dict[str, Any]] = {}


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):

        def on_done(environment: Any, msg: Any, **_: Any) -> None:
            _done[msg.data["worker"]] = msg.data
            (RUN / "workers-done.json").write_text(json.dumps(_done))

        environment.runner.register_message("lt_done", on_done)


class Handheld(FastHttpUser):
    """A device with a token, sending operations until they are answered."""

    abstract = True
    network_timeout = float(_env("TIMEOUT", "10"))
    connection_timeout = 5.0
    #: Job roles this user takes first, then the ones it helps with.
    roles: tuple[str, ...] = ()

    def on_start(self) -> None:
        self.work = work_for(self.environment)

    def send(self, token: str, req: Request) -> Answer:
        url = f"/v1/rounds/{self.work.round}{req.path}"
        headers = {"Authorization": f"Bearer {token}"}
        attempts = lost = shed = 0
        backoff = 0.2
        while True:
            attempts += 1
            with self.client.request(
                req.method, url, json=req.body, headers=headers, name=req.name, catch_response=True
            ) as resp:
                code = resp.status_code
                if code in (429, 503):
                    shed += 1
                    resp.failure(f"shed {code}")
                    wait = float(resp.headers.get("Retry-After") or 1.0)
                elif code == 0 or code >= 500:
                    lost += 1
                    resp.failure(f"no answer ({code})")
                    wait, backoff = backoff, min(backoff * 2, 5.0)
                    if lost >= MAX_LOST:
                        raise GaveUp(Answer(0, {"code": "unknown"}, attempts, lost, shed))
                else:
                    try:
                        body = resp.json()
                    except ValueError:
                        body = {}
                    if code in req.expected or 200 <= code < 300:
                        resp.success()
                    else:
                        resp.failure(f"{code} {body.get('code', '')}")
                    return Answer(code, body, attempts, lost, shed)
            gevent.sleep(wait * random.uniform(1.0, 1.5))

    def run_job(self, job: Job | HandheldRun, until: Any = None) -> None:
        try:
            while not (until and until()) and (req := job.next()) is not None:
                if not req.method:  # the network is cut: nothing is sent
                    job.answered(Answer(0, None))
                    pause = req.pause
                    gevent.sleep(random.uniform(0.5, 1.5) * PACE if pause is None else pause)
                    continue
                sent = time.time()
                try:
                    ans = self.send(job.token, req)
                except GaveUp as exc:
                    # No answer after many tries: the operation may or may not have
                    # applied. Record it as unknown and abandon the job; the verifier
                    # will show what it left undone.
                    self.work.record(req, exc.answer)
                    self.work.failed += 1
                    job.pending, job.done = None, True
                    break
                self.work.record(req, ans)
                if self.work.surge is not None:
                    self._timed(job, req, ans, sent)
                job.answered(ans)
                if PACE:
                    gevent.sleep(random.uniform(0.5, 1.5) * PACE)
        finally:
            self.work.release(job)

    def _timed(self, job: Job | HandheldRun, req: Request, ans: Answer, sent: float) -> None:
        """The sampler's wait for a single scan of a handheld that stayed online (every
        attempt, shed ones too), and each first upload of ops queued in the outage."""
        assert self.work.surge is not None
        if req.outage_ops:
            kind = "batch"
        elif req.name == "scan" and isinstance(job, HandheldRun) and job.outage is None:
            kind = "scan"
        else:
            return
        self.work.surge.write(
            k=kind, t0=round(sent, 4), t1=round(time.time(), 4), n=req.outage_ops, h=ans.http
        )

    @task
    def work_on(self) -> None:
        job = self.work.claim(self.roles)
        if job is not None:
            self.run_job(job)
            return
        if self.work.idle():
            self.work.report()
        gevent.sleep(0.5)


class Sampler(Handheld):
    """A sampler with a working network: open a tube, scan ten, close."""

    weight = 9
    roles = ("online", "offline", *CHAIN)


class NetworkDropSampler(Handheld):
    """A sampler whose network drops: scans queue up and go as offline batches."""

    weight = 1
    roles = ("offline", "online", *CHAIN)


class Uplink(Handheld):
    """A cut handheld's background upload: when the network comes back the queue goes
    up whether or not a sampler is working the handheld (Locust may have stopped the user
    that held it when the day's curve fell). Only with ``--outage``."""

    fixed_count = int(_env("UPLINKS", "0"))

    @task
    def work_on(self) -> None:
        job = self.work.claim_upload()
        if job is None:
            gevent.sleep(0.2)
            return
        self.run_job(job, until=lambda: not job.held)


class Sealer(Handheld):
    """Boxes a sampling point's closed tubes, seals with the count, hands the box over."""

    fixed_count = WORKERS * CHAIN_USERS
    roles = ("sealer", "courier", "lab")


class Courier(Handheld):
    fixed_count = WORKERS * max(1, CHAIN_USERS // 4)
    roles = ("courier", "lab", "sealer")


class LabDesk(Handheld):
    fixed_count = WORKERS * CHAIN_USERS
    roles = ("lab", "courier", "sealer", "labsys")


class LabSystem(Handheld):
    """The lab's instrument software reporting each taken-in box's results."""

    fixed_count = WORKERS * max(1, CHAIN_USERS // 4)
    roles = ("labsys", "lab", "courier", "sealer")


class Viewer(FastHttpUser):
    """The command centre's wall: round counters every few seconds."""

    fixed_count = 1
    wait_time = between(2, 4)

    def on_start(self) -> None:
        self.work = work_for(self.environment)
        self.headers = {"Authorization": f"Bearer {self.work.plan.viewer}"}

    @task
    def counters(self) -> None:
        self.client.get(
            f"/v1/rounds/{self.work.round}/counters", headers=self.headers, name="counters"
        )


# -- the day ------------------------------------------------------------------------------

#: Share of the peak at each hour of the sampling day (06:00-18:00): the 9 a.m. surge,
#: lunch, the afternoon.
DAY = (
    (6, 0.15),
    (7, 0.5),
    (8, 0.85),
    (9, 1.0),
    (10, 0.8),
    (11, 0.6),
    (12, 0.35),
    (13, 0.35),
    (14, 0.5),
    (15, 0.55),
    (16, 0.45),
    (17, 0.3),
    (18, 0.3),
)


def level(hour: float) -> float:
    """Linear between the hours of :data:`DAY`; the evening level after 18:00."""
    for (h0, v0), (h1, v1) in itertools.pairwise(DAY):
        if h0 <= hour < h1:
            return v0 + (v1 - v0) * (hour - h0) / (h1 - h0)
    return DAY[-1][1] if hour >= DAY[-1][0] else DAY[0][1]


class RoundDay(LoadTestShape):
    """Samplers follow the day; the chain and the viewer are there throughout."""

    use_common_options = False

    def __init__(self) -> None:
        super().__init__()
        self.peak = int(_env("PEAK", "40"))
        self.day = float(_env("DAY", "60"))
        self.limit = float(_env("MAX_SECONDS", "3600"))
        self.floor = max(2 * WORKERS, 1)

    def tick(self) -> tuple[int, float, list[type[Any]]] | None:
        t = self.get_run_time()
        if len(_done) >= WORKERS:
            (RUN / "end.json").write_text(json.dumps({"reason": "done", "seconds": t}))
            return None
        if t > self.limit:
            (RUN / "end.json").write_text(json.dumps({"reason": "time limit", "seconds": t}))
            return None
        hour = 6 + 12 * t / self.day
        samplers = max(self.floor, round(self.peak * level(hour)))
        classes: list[type[Any]] = [Sampler, NetworkDropSampler, Viewer]
        fixed = 1
        if Uplink.fixed_count:
            classes.append(Uplink)
            fixed += Uplink.fixed_count
        if BOXING:
            classes += [Sealer, Courier, LabDesk]
            fixed += Sealer.fixed_count + Courier.fixed_count + LabDesk.fixed_count
            if LAB_RESULTS:
                classes.append(LabSystem)
                fixed += LabSystem.fixed_count
        return samplers + fixed, max(10.0, self.peak / 5), classes
