"""``sampling demo``: a whole synthetic round through the real HTTP API.

Starts the embedded Valkey server and the API (uvicorn, on loopback), builds a
district, opens a round, and runs every sampling point at once: tubes of ten,
risk residents alone, an offline batch uploaded twice, and the field's usual
mistakes (a resident scanned twice, an 11th scan into a full tube, a garbled
read, an undone misread). Then it checks every acknowledged scan against Redis
(``lost`` must be 0) and hands over to the boxing and lab steps where present.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
import shutil
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl
import uvicorn
from rich.console import Console
from rich.table import Table

from sampling import codes
from sampling.api.app import create_app
from sampling.auth.devices import Devices
from sampling.auth.models import DeviceIn
from sampling.binding import keys
from sampling.demo.synth import District, Resident, district
from sampling.privacy import ResidentHasher
from sampling.settings import Settings
from sampling.store.client import as_bytes, connect
from sampling.store.embedded import EmbeddedServer, free_port
from sampling.store.lock import LOCK_NAME, DataDirLock

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

ROUND = "demo"
#: Seconds a stopping server waits for open requests (event streams) before ending them.
GRACE_S = 3
SHOW_UP = 0.88


@dataclass
class Context:
    """What the demo steps of the other domains get."""

    http: httpx.AsyncClient
    admin: str
    round_id: str
    sites: list[str]
    closed_tubes: dict[str, list[str]]
    out_dir: Path
    data_dir: Path
    register_path: Path
    settings: Settings
    console: Console
    quiet: bool
    district: District

    def log(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    async def archive(self) -> None:
        from sampling import archive

        redis = connect(self.settings.redis_url)
        try:
            await archive.drain(redis, self.round_id, self.data_dir)
        finally:
            await redis.aclose()
        archive.materialize(self.data_dir, self.round_id)


@dataclass
class Tally:
    scanned: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    #: resident code -> tube code, for every scan the service acknowledged (and kept).
    ledger: dict[str, str] = field(default_factory=dict)
    tubes: dict[str, list[str]] = field(default_factory=dict)
    batch_ops: int = 0
    batch_replayed_same: bool = True


class Point:
    """One sampling point's handheld: its token, its counter, its tubes."""

    def __init__(
        self, http: httpx.AsyncClient, token: str, site: str, serial_base: int, tally: Tally
    ) -> None:
        self.http, self.site, self.tally = http, site, tally
        self.headers = {"Authorization": f"Bearer {token}"}
        self.seq = 0
        self.serial = serial_base
        self.tally.tubes.setdefault(site, [])

    def _next(self) -> tuple[int, str]:
        self.seq += 1
        return self.seq, f"{self.site}-{self.seq}"

    def new_tube(self) -> str:
        self.serial += 1
        return codes.make_tube(self.serial)

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        for attempt in range(5):
            try:
                resp = await self.http.post(
                    f"/v1/rounds/{ROUND}{path}", json=body, headers=self.headers
                )
            except httpx.TransportError:
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            if resp.status_code not in (429, 503):
                return resp
            await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
        raise RuntimeError(f"gave up on {path}")

    async def open(self, capacity: int | None = None) -> str:
        tube = self.new_tube()
        seq, op = self._next()
        body: dict[str, Any] = {"op": op, "seq": seq, "tube": tube}
        if capacity:
            body["capacity"] = capacity
        resp = await self.post("/tubes", body)
        if resp.status_code != 201:
            raise RuntimeError(f"open {tube}: {resp.text}")
        self.tally.tubes[self.site].append(tube)
        return tube

    async def scan(self, tube: str, code: str) -> dict[str, Any]:
        seq, op = self._next()
        self.tally.scanned += 1
        resp = await self.post(f"/tubes/{tube}/scans", {"op": op, "seq": seq, "resident": code})
        body: dict[str, Any] = resp.json()
        if resp.status_code == 200:
            self.tally.ledger[code] = tube
        else:
            self.tally.refused[body.get("code", str(resp.status_code))] += 1
        return body | {"http": resp.status_code}

    async def undo(self, tube: str, code: str) -> None:
        seq, op = self._next()
        resp = await self.post(f"/tubes/{tube}/undo", {"op": op, "seq": seq, "resident": code})
        if resp.status_code == 200:
            self.tally.ledger.pop(code, None)

    async def close(self, tube: str) -> None:
        seq, op = self._next()
        await self.post(f"/tubes/{tube}/close", {"op": op, "seq": seq})


async def _sample_site(point: Point, people: list[Resident], mistakes: bool) -> None:
    risky = [p for p in people if p.risk_flags]
    pooled = [p for p in people if not p.risk_flags]
    spare = pooled[-2:] if mistakes and len(pooled) > 12 else []
    pooled = pooled[: len(pooled) - len(spare)]
    for person in risky:  # alone, in a single tube
        tube = await point.open(capacity=1)
        await point.scan(tube, person.code)
    tube, count = "", 10
    first_full = ""
    for person in pooled:
        if count >= 10:
            tube, count = await point.open(), 0
        body = await point.scan(tube, person.code)
        count = body.get("count", count) if body["http"] == 200 else count
        if body.get("closed") and not first_full:
            first_full = tube
    if tube and count < 10:
        await point.close(tube)
    if spare and first_full:
        late, misread = spare
        await point.scan(first_full, late.code)  # an 11th scan into a full tube: refused
        tube = await point.open()
        await point.scan(tube, late.code)
        await point.scan(tube, pooled[0].code)  # sampled earlier today: refused, says where
        garbled = late.code[:-1] + ("0" if late.code[-1] != "0" else "1")
        await point.scan(tube, garbled)  # a misread that fails its check character
        await point.scan(tube, misread.code)  # bound by mistake...
        await point.undo(tube, misread.code)  # ...undone at once...
        await point.scan(tube, misread.code)  # ...and scanned again, properly
        await point.close(tube)


async def _offline(point: Point, people: list[Resident]) -> None:
    """A handheld that lost its network: its scans go up later as one batch, twice."""
    ops: list[dict[str, Any]] = []

    def op(kind: str, tube: str, **extra: Any) -> None:
        seq, opid = point._next()
        ops.append({"op": opid, "seq": seq, "kind": kind, "tube": tube, **extra})

    tube = point.new_tube()
    op("open", tube)
    for person in people[:10]:
        op("scan", tube, resident=person.code)
    if len(people) < 10:
        op("close", tube)
    first = await point.post("/batches", {"ops": ops})
    second = await point.post("/batches", {"ops": ops})  # the retry after a lost answer
    a, b = first.json()["results"], second.json()["results"]
    point.tally.batch_ops += len(ops)
    point.tally.batch_replayed_same = [x["status"] for x in a] == [y["status"] for y in b] and all(
        y["replayed"] for y in b
    )
    point.tally.tubes[point.site].append(tube)
    for person, result in zip(people[:10], a[1:], strict=False):
        if result["status"] == "ok":
            point.tally.ledger[person.code] = tube
        else:
            point.tally.refused[result["status"]] += 1
        point.tally.scanned += 1


async def _verify(settings: Settings, tally: Tally) -> tuple[int, int]:
    """Acknowledged scans not found in Redis (lost), and residents found twice (doubled)."""
    hasher = ResidentHasher(settings.secret())
    redis = connect(settings.redis_url)
    lost = 0
    try:
        pipe = redis.pipeline(transaction=False)
        items = list(tally.ledger.items())
        for code, _tube in items:
            digest = hasher.digest(code)
            pipe.hget(keys.resident_bucket(ROUND, digest), digest[2:])
        found = await pipe.execute()
        for (_code, tube), serial in zip(items, found, strict=True):
            if serial is None or int(serial) != codes.tube_number(tube):
                lost += 1
        members = 0
        async for key in redis.scan_iter(match=keys.tube(ROUND, "*"), count=1000):
            raw = await redis.get(key)
            if raw:
                data = as_bytes(raw)
                members += (len(data) - data[0]) // 12
        counters = await redis.hgetall(keys.count(ROUND))
        bound = int(counters.get(b"bound", 0)) + int(counters.get(b"resampled", 0))
    finally:
        await redis.aclose()
    return lost, max(0, members - bound)


def _serve(settings: Settings, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        # An open dashboard's event stream never ends by itself: without a limit,
        # Ctrl-C would wait for the browser to close.
        timeout_graceful_shutdown=GRACE_S,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    return server, thread


async def _main(
    out: Path,
    settings: Settings,
    dist: District,
    port: int,
    console: Console,
    quiet: bool,
    seed: int,
) -> dict[str, Any]:
    rng = random.Random(seed)
    summary: dict[str, Any] = {}
    redis = connect(settings.redis_url)
    admin = (await Devices(redis).create(DeviceIn(id="demo-admin", role="admin"))).token
    await redis.aclose()
    register_path = out / "register.parquet"
    pl.DataFrame(dist.register_rows()).write_parquet(register_path)
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as http:
        auth = {"Authorization": f"Bearer {admin}"}

        async def admin_post(path: str, body: Any, method: str = "POST") -> Any:
            resp = await http.request(method, path, json=body, headers=auth)
            if resp.status_code >= 300:
                raise RuntimeError(f"{path}: {resp.status_code} {resp.text}")
            return resp.json()

        await admin_post("/v1/rounds", {"id": ROUND, "name": "演示轮次 demo round", "pool": 10})
        tokens: dict[str, str] = {}
        for s in dist.sites:
            await admin_post(
                "/v1/sites",
                {
                    "id": s.id,
                    "name": s.name,
                    "street": s.street,
                    "community": s.community,
                    "grid": s.grid,
                },
            )
            made = await admin_post(
                "/v1/devices", {"id": f"scan-{s.id}", "role": "scanner", "site": s.id}
            )
            tokens[s.id] = made["token"]
        risky = [
            {"resident": p.code, "flags": p.risk_flags} for p in dist.residents if p.risk_flags
        ]
        if risky:
            await admin_post(
                f"/v1/rounds/{ROUND}/risk",
                {"residents": risky, "reason": "demo: synthetic residents at risk"},
                "PUT",
            )
        ctx = Context(
            http=http,
            admin=admin,
            round_id=ROUND,
            sites=[s.id for s in dist.sites],
            closed_tubes={},
            out_dir=out,
            data_dir=settings.data_dir,
            register_path=register_path,
            settings=settings,
            console=console,
            quiet=quiet,
            district=dist,
        )
        ctx.log(
            f"[bold]round {ROUND}[/]: {len(dist.residents)} residents, "
            f"{len(dist.sites)} sampling points, {len(risky)} flagged for single tubes"
        )

        tally = Tally()
        by_grid: dict[str, list[Resident]] = {}
        for p in dist.residents:
            if not p.vacant and not p.away and rng.random() < SHOW_UP:
                by_grid.setdefault(p.grid, []).append(p)
        started = time.monotonic()
        jobs = []
        offline_people: list[Resident] = []
        for i, s in enumerate(dist.sites):
            people = by_grid.get(s.grid, [])
            if i == 1 and len(people) > 20:
                offline_people = [p for p in people if not p.risk_flags][:10]
                people = [p for p in people if p not in offline_people]
            point = Point(http, tokens[s.id], s.id, (i + 1) * 1_000_000, tally)
            jobs.append(_sample_site(point, people, mistakes=(i == 0)))
            if i == 1 and offline_people:
                offline_point = point
        await asyncio.gather(*jobs)
        if offline_people:
            await _offline(offline_point, offline_people)
        seconds = time.monotonic() - started
        lost, doubled = await _verify(settings, tally)
        counters = (await http.get(f"/v1/rounds/{ROUND}/counters", headers=auth)).json()
        for site_id, tubes in tally.tubes.items():
            ctx.closed_tubes[site_id] = list(tubes)
        summary.update(
            {
                "residents": len(dist.residents),
                "scanned": tally.scanned,
                "bound": counters.get("bound", 0),
                "tubes": counters.get("tubes_opened", 0),
                "refused": dict(sorted(tally.refused.items())),
                "lost": lost,
                "doubled": doubled,
                "offline_batch_ops": tally.batch_ops,
                "offline_retry_same_answer": tally.batch_replayed_same,
                "sampling_seconds": round(seconds, 2),
                "scans_per_s": round(tally.scanned / seconds, 1) if seconds else 0,
            }
        )
        ctx.log(
            f"sampling done in {seconds:.1f}s: {summary['bound']} bound in "
            f"{summary['tubes']} tubes, refused {summary['refused']}, lost {lost}"
        )
        for step in ("sampling.boxing.demo", "sampling.lab.demo"):
            try:
                module = importlib.import_module(step)
            except ModuleNotFoundError:
                continue
            summary.update(await module.run(ctx))
        await ctx.archive()
        summary["out_dir"] = str(out)
    return summary


def _print(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="sampling demo", show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)


def run_demo(
    out: Path,
    *,
    residents: int,
    n_sites: int,
    seed: int,
    quiet: bool,
    serve: bool = False,
    port: int | None = None,
    on_ready: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the demo round; with ``serve``, then keep the API and the pages serving on
    ``port`` until interrupted (Ctrl-C or SIGTERM), after ``on_ready(summary)``."""
    console = Console(stderr=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The folder is ours alone while the demo runs (a second demo on it would wipe
    # the first one's running server): lock it, then wipe all but the lock.
    with DataDirLock(out):
        for child in out.iterdir():
            if child.name != LOCK_NAME:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        summary = _run(
            out, residents, n_sites, seed, quiet, console, serve=serve, port=port, on_ready=on_ready
        )
    if not quiet and not serve:
        _print(console, summary)
    return summary


def _run(
    out: Path,
    residents: int,
    n_sites: int,
    seed: int,
    quiet: bool,
    console: Console,
    *,
    serve: bool,
    port: int | None,
    on_ready: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    data_dir = out / "data"
    port = port or free_port()
    with DataDirLock(data_dir), EmbeddedServer(data_dir / "valkey") as valkey:
        # The demo plays a day in seconds: per-device rate limits set for people
        # scanning by hand would throttle its simulated devices.
        # With --serve the archiver keeps the dashboard's coverage current afterwards.
        settings = Settings(
            redis_url=valkey.url, data_dir=data_dir, device_rate=100_000.0, archiver=serve
        )
        settings.secret()
        dist = district(residents, n_sites, seed)
        # The round runs without the background archiver: the demo archives and
        # reports itself, and a pass rewriting the tables meanwhile could replace a
        # file between the report's reading its layout and its data.
        server, thread = _serve(settings.with_(archiver=False), port)
        try:
            summary = asyncio.run(_main(out, settings, dist, port, console, quiet, seed))
            summary["round"] = ROUND
            if serve:
                # From here on the archiver keeps the dashboard's coverage current.
                server.should_exit = True
                thread.join(10)
                server, thread = _serve(settings, port)
                summary.update(asyncio.run(_viewer(settings, port)))
                if not quiet:
                    _print(console, summary)
                if on_ready is not None:
                    on_ready(summary)
                if not quiet:
                    console.print(
                        f"[bold]Serving[/] the API and the pages on http://127.0.0.1:{port}/ : "
                        f"open {summary['dashboard_url']} and sign in with the viewer token "
                        "above. Ctrl-C stops."
                    )
                _wait_for_interrupt()
        finally:
            server.should_exit = True
            thread.join(10)
    return summary


async def _viewer(settings: Settings, port: int) -> dict[str, Any]:
    """A command-centre (viewer) token for the demo data, and where its dashboard is."""
    from sampling.live import tables

    # The live tables (coverage per street, community, grid) as of the demo's
    # archive, as the continuous archiver writes them in `sampling serve`.
    tables.write(settings.data_dir, ROUND, time.time())
    redis = connect(settings.redis_url)
    try:
        made = await Devices(redis).create(DeviceIn(id="demo-viewer", role="viewer"))
    finally:
        await redis.aclose()
    base = f"http://127.0.0.1:{port}"
    return {
        "dashboard_url": f"{base}/ui/rounds/{ROUND}",
        "login_url": f"{base}/ui/login?next=/ui/rounds/{ROUND}",
        "viewer_token": made.token,
    }


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM (both end the demo the same, clean way)."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
