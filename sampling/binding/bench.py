"""``sampling bench binding``: what the binding core does on this machine, in one run.

1. ``ceiling_requests_per_s``: GET /healthz (no auth, no Redis) with the same
   workers and the same client: the most this HTTP stack answers here.
2. ``single_scans_per_s``: handhelds scanning one resident per request (a tube
   opened every ten scans, as in the field), with p50/p99 latency of the scans.
   ``single_ratio`` = scans per second / ceiling.
3. ``batch_scans_per_s``: offline batches of 100 operations (5 opens of 20-tubes
   and 95 scans), scans per second.
3a. What a scan costs, which the ratio to the ceiling hides: the CPU time the
   API processes (``sampling serve`` and its workers) and the Valkey process
   spent over each phase, divided by the scans of the phase, in microseconds
   (``api_cpu_us_per_scan``, ``valkey_cpu_us_per_scan`` for single scans, tube
   opens included; ``..._per_batched_scan`` for batches). Read with psutil from
   the processes' own accounting, so the load generator's CPU is not in them.
4. ``bytes_per_binding``: a round filled with 1,000,000 bindings straight
   through the binding service, its journal archived to Parquet, then the
   server's ``used_memory`` growth divided by the bindings (every key of the
   round, the global tube claims and allocator overhead included).

The API runs as ``sampling serve`` (uvicorn workers) against an embedded Valkey
server; the load comes from this process over keep-alive loopback connections
with a minimal HTTP/1.1 client, so the client costs as little CPU as it can on
a 2-core machine where client, API and Redis share the cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import httpx
import psutil
import redis
from rich.console import Console

from sampling import codes
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer, free_port

if TYPE_CHECKING:
    from collections.abc import Callable

console = Console(stderr=True)


class _Conn:
    """One keep-alive HTTP/1.1 connection; enough protocol for our own server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def call(
        self, method: str, path: str, token: str = "", body: bytes = b""
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _ceiling(port: int, conns: int, seconds: float) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        c = await _Conn.open(port)
        while time.monotonic() < stop:
            status, _ = await c.call("GET", "/healthz")
            assert status == 200
            done += 1
        c.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return done / (time.monotonic() - t0)


async def _singles(
    port: int, tokens: list[str], round_id: str, seconds: float, base: int
) -> tuple[tuple[float, list[float]], int]:
    scans = 0
    lat: list[float] = []
    stop = time.monotonic() + seconds

    async def worker(i: int, token: str) -> None:
        nonlocal scans
        c = await _Conn.open(port)
        seq, serial, person = 0, base + i * 1_000_000, (base + i * 1_000_000) * 10
        while time.monotonic() < stop:
            serial += 1
            seq += 1
            tube = codes.make_tube(serial)
            body = json.dumps({"op": str(seq), "seq": seq, "tube": tube}).encode()
            status, text = await c.call("POST", f"/v1/rounds/{round_id}/tubes", token, body)
            assert status == 201, text
            for _ in range(10):
                seq += 1
                person += 1
                resident = codes.make_resident_id(f"{person:017d}")
                body = json.dumps({"op": str(seq), "seq": seq, "resident": resident}).encode()
                t = time.perf_counter()
                status, text = await c.call(
                    "POST", f"/v1/rounds/{round_id}/tubes/{tube}/scans", token, body
                )
                lat.append((time.perf_counter() - t) * 1000)
                assert status == 200, text
                scans += 1
        c.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker(i, t) for i, t in enumerate(tokens)))
    return (scans / (time.monotonic() - t0), lat), scans


async def _batches(
    port: int, tokens: list[str], round_id: str, seconds: float, base: int
) -> tuple[float, int]:
    scans = 0
    stop = time.monotonic() + seconds

    async def worker(i: int, token: str) -> None:
        nonlocal scans
        c = await _Conn.open(port)
        seq, serial, person = 0, base + i * 1_000_000, (base + i * 1_000_000) * 10
        while time.monotonic() < stop:
            ops: list[dict[str, Any]] = []
            for _ in range(5):
                serial += 1
                seq += 1
                tube = codes.make_tube(serial)
                ops.append(
                    {"op": str(seq), "seq": seq, "kind": "open", "tube": tube, "capacity": 20}
                )
                for _ in range(19 if len(ops) < 96 else 18):
                    seq += 1
                    person += 1
                    ops.append(
                        {
                            "op": str(seq),
                            "seq": seq,
                            "kind": "scan",
                            "tube": tube,
                            "resident": codes.make_resident_id(f"{person:017d}"),
                        }
                    )
            ops = ops[:100]
            body = json.dumps({"ops": ops}).encode()
            status, text = await c.call("POST", f"/v1/rounds/{round_id}/batches", token, body)
            while status == 503:
                # Batches have their own admission room (SAMPLING_MAX_INFLIGHT_BATCHES):
                # a full room answers 503 and the handheld resends the same batch, as
                # the field client does; the same op ids make the resend safe.
                await asyncio.sleep(0.002)
                status, text = await c.call("POST", f"/v1/rounds/{round_id}/batches", token, body)
            assert status == 200, text
            result = json.loads(text)
            assert result["refused"] == 0, result
            scans += sum(o["kind"] == "scan" for o in ops)
        c.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker(i, t) for i, t in enumerate(tokens)))
    return scans / (time.monotonic() - t0), scans


async def _fill(url: str, data_dir: Path, bindings: int) -> dict[str, float]:
    """A round of ``bindings`` residents in 10-tubes, its journal archived; memory growth."""
    from sampling import archive
    from sampling.api.services import Services
    from sampling.auth.models import Device
    from sampling.binding.models import Batch, BatchOp, RoundIn

    svc = Services.build(Settings(redis_url=url, data_dir=data_dir, max_batch=10_000))
    before = int((await svc.redis.info("memory"))["used_memory"])
    await svc.rounds.create(RoundIn(id="mem", name="memory", pool=10))
    devices = 8
    per_device = bindings // devices

    async def device(d: int) -> None:
        dev = Device(id=f"fill{d}", role="scanner", site="S1")
        seq = 0
        done = 0
        serial = 500_000_000 + d * 10_000_000
        person = 50_000_000_000 + d * 1_000_000_000
        while done < per_device:
            ops: list[BatchOp] = []
            while len(ops) < 1000 and done < per_device:
                serial += 1
                seq += 1
                tube = codes.make_tube(serial)
                ops.append(BatchOp(op=str(seq), seq=seq, kind="open", tube=tube))
                for _ in range(min(10, per_device - done)):
                    seq += 1
                    person += 1
                    ops.append(
                        BatchOp(
                            op=str(seq),
                            seq=seq,
                            kind="scan",
                            tube=tube,
                            resident=codes.make_resident_id(f"{person:017d}"),
                        )
                    )
                    done += 1
            result = await svc.binder.batch(dev, "mem", Batch(ops=ops))
            assert result.refused == 0, result.results[:3]

    t0 = time.monotonic()
    await asyncio.gather(*(device(d) for d in range(devices)))
    fill_s = time.monotonic() - t0
    with_journal = int((await svc.redis.info("memory"))["used_memory"])
    report = await archive.drain(svc.redis, "mem", data_dir)
    after = int((await svc.redis.info("memory"))["used_memory"])
    await svc.close()
    bound = devices * per_device
    return {
        "bindings": bound,
        "fill_seconds": round(fill_s, 1),
        "bytes_per_binding": round((after - before) / bound, 1),
        "bytes_per_binding_before_archive": round((with_journal - before) / bound, 1),
        "journal_entries_archived": report.entries,
    }


async def _setup(port: int, admin_token: str, round_id: str, n: int) -> list[str]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        h = {"Authorization": f"Bearer {admin_token}"}
        resp = await http.post("/v1/rounds", json={"id": round_id, "name": round_id}, headers=h)
        assert resp.status_code == 201, resp.text
        tokens = []
        for i in range(n):
            made = await http.post(
                "/v1/devices",
                headers=h,
                json={"id": f"{round_id}-{i}", "role": "scanner", "site": "S1"},
            )
            tokens.append(made.json()["token"])
        return tokens


async def _admin(url: str, data_dir: Path) -> str:
    from sampling.api.services import Services
    from sampling.auth.models import DeviceIn
    from sampling.binding.models import SiteIn

    svc = Services.build(Settings(redis_url=url, data_dir=data_dir))
    token: str = (await svc.devices.create(DeviceIn(id="bench-admin", role="admin"))).token
    await svc.sites.create(SiteIn(id="S1", name="bench", street="s", community="c", grid="g"))
    await svc.close()
    return token


class _Cpu:
    """CPU seconds (user + system) spent by a set of processes, read before and after a phase."""

    def __init__(self, pids: list[int]) -> None:
        self._procs = [psutil.Process(pid) for pid in pids]

    @classmethod
    def tree(cls, pid: int, workers: int) -> _Cpu:
        """A process and every descendant: ``sampling serve`` and its uvicorn workers,
        once all ``workers`` are up (the first one answers /readyz before the last
        has started, and one missed would leave its CPU out)."""
        root = psutil.Process(pid)
        deadline = time.monotonic() + 60
        while True:
            children = root.children(recursive=True)
            spawned = sum("spawn_main" in " ".join(c.cmdline()) for c in children)
            if spawned >= workers or time.monotonic() > deadline:
                return cls([root.pid, *(c.pid for c in children)])
            time.sleep(0.2)

    def snapshot(self) -> dict[int, float]:
        """CPU seconds per process, its reaped children's included (an archive pass
        runs in a short-lived child of a worker: its CPU is the API's too)."""
        out: dict[int, float] = {}
        for proc in self._procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system + t.children_user + t.children_system
        return out

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        """Seconds spent between two snapshots by the processes alive at both."""
        return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


_T = TypeVar("_T")


def _commandstats(url: str) -> dict[str, tuple[int, int]]:
    """Valkey's own accounting: calls and microseconds per command (scripts' inner
    commands included, counted under their own names)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in stats.items()
    }


def _commands_per_scan(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], scans: int
) -> dict[str, dict[str, float]]:
    """Per command over a phase: calls per scan and Valkey's microseconds per scan,
    most expensive first (the profile of where Valkey's share goes)."""
    out: dict[str, dict[str, float]] = {}
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if calls > c0:
            out[name] = {
                "calls": round((calls - c0) / scans, 3),
                "us": round((usec - u0) / scans, 2),
            }
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["us"]))


def _per_scan(
    api: _Cpu, valkey: _Cpu, url: str, phase: Callable[[], tuple[_T, int]]
) -> tuple[_T, float, float, dict[str, dict[str, float]]]:
    """Run ``phase`` (returning its result and its scan count); CPU us per scan,
    and Valkey's commands per scan."""
    s0 = _commandstats(url)
    a0, v0 = api.snapshot(), valkey.snapshot()
    result, scans = phase()
    a1, v1 = api.snapshot(), valkey.snapshot()
    scans = max(scans, 1)
    per_scan = 1e6 / scans
    return (
        result,
        round(_Cpu.spent(a0, a1) * per_scan, 1),
        round(_Cpu.spent(v0, v1) * per_scan, 1),
        _commands_per_scan(s0, _commandstats(url), scans),
    )


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException("the API did not start")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise click.ClickException("the API did not become ready in 60 s")


@click.command(name="binding")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on the last line.")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Per HTTP phase.")
@click.option("--workers", type=int, default=2, show_default=True, help="API worker processes.")
@click.option("--connections", type=int, default=32, show_default=True)
@click.option(
    "--bindings",
    type=int,
    default=1_000_000,
    show_default=True,
    help="Bindings for the memory figure.",
)
def bench_binding_command(
    as_json: bool, seconds: float, workers: int, connections: int, bindings: int
) -> None:
    """Measure scan throughput over HTTP against the stack's ceiling, batches, and memory."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        data_dir = Path(tmp)
        with EmbeddedServer(data_dir / "valkey") as valkey:
            port = free_port()
            env = {
                **os.environ,
                "SAMPLING_REDIS_URL": valkey.url,
                "SAMPLING_DATA_DIR": tmp,
                "SAMPLING_SECRET": "cd" * 32,
                "SAMPLING_DEVICE_RATE": "1000000",
            }
            admin = asyncio.run(_admin(valkey.url, data_dir))
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sampling.cli",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                env=env,
            )
            try:
                _wait_ready(port, proc)
                console.print(
                    f"API: {workers} workers on :{port}; {connections} connections, "
                    f"{seconds:.0f} s per phase"
                )
                ceiling = asyncio.run(_ceiling(port, connections, seconds))
                console.print(f"ceiling (GET /healthz): {ceiling:,.0f} requests/s")
                assert valkey.process is not None
                api_cpu, valkey_cpu = _Cpu.tree(proc.pid, workers), _Cpu([valkey.process.pid])
                tokens = asyncio.run(_setup(port, admin, "single", connections))
                (single, lat), *single_cpu, single_cmds = _per_scan(
                    api_cpu,
                    valkey_cpu,
                    valkey.url,
                    lambda: asyncio.run(_singles(port, tokens, "single", seconds, 1)),
                )
                console.print(
                    f"single scans: {single:,.0f} scans/s; CPU per scan: API "
                    f"{single_cpu[0]:,.0f} us, Valkey {single_cpu[1]:,.0f} us"
                )
                tokens = asyncio.run(_setup(port, admin, "batch", connections // 4 or 1))
                batch, *batch_cpu, batch_cmds = _per_scan(
                    api_cpu,
                    valkey_cpu,
                    valkey.url,
                    lambda: asyncio.run(_batches(port, tokens, "batch", seconds, 500_000)),
                )
                console.print(
                    f"offline batches of 100: {batch:,.0f} scans/s; CPU per scan: API "
                    f"{batch_cpu[0]:,.0f} us, Valkey {batch_cpu[1]:,.0f} us"
                )
            finally:
                proc.terminate()
                proc.wait(30)
            console.print(f"filling a round with {bindings:,} bindings for the memory figure...")
            mem = asyncio.run(_fill(valkey.url, data_dir, bindings))
    lat.sort()
    result = {
        "single_scans_per_s": round(single, 1),
        "ceiling_requests_per_s": round(ceiling, 1),
        "single_ratio": round(single / ceiling, 3),
        "batch_scans_per_s": round(batch, 1),
        "api_cpu_us_per_scan": single_cpu[0],
        "valkey_cpu_us_per_scan": single_cpu[1],
        "api_cpu_us_per_batched_scan": batch_cpu[0],
        "valkey_cpu_us_per_batched_scan": batch_cpu[1],
        "valkey_commands_per_scan": single_cmds,
        "valkey_commands_per_batched_scan": batch_cmds,
        **mem,
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[int(len(lat) * 0.99)], 2),
        "workers": workers,
        "connections": connections,
        "cpus": os.cpu_count(),
    }
    for key, value in result.items():
        console.print(f"  {key:34} {value}")
    if as_json:
        click.echo(json.dumps(result))
