"""``sampling bench live``: the live figures endpoint on a full round, under load.

1. Fill (not timed as part of the figures): a register of ``--residents`` people
   (the synthetic district of :mod:`sampling.lab.synth`, with real resident codes
   and their keyed hashes) and a round with 95% of them bound 10 to a tube (those
   the register flags left out: they would need single tubes), by
   offline batches straight through the binding service (the fill of ``bench
   binding``); then one archive pass, as the background archiver would have made
   during the morning.
2. ``sampling serve`` with its background archiver (``--archive-every``), and
   meanwhile: handhelds scanning new residents over HTTP at ``--scan-rate``
   scans/s, and dashboards polling ``GET /v1/rounds/{round}/live`` at
   ``--poll-rate`` requests/s for ``--seconds``.
3. Printed: ``p50_ms`` / ``p99_ms`` of the live endpoint and ``archive_lag_s``,
   the largest ``as_of - archived_at`` a poll saw (how far the archived tables,
   and so the coverage per street, community and grid, were behind).

Client, API workers, archiver and Valkey share this machine's cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx
import polars as pl
from rich.console import Console

from sampling import codes
from sampling.binding.bench import _Conn, _wait_ready
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer, free_port

console = Console(stderr=True)
ROUND = "live"
SECRET = "cd" * 32
SITES = 8
#: Bound residents: every one but each twentieth (95%).
SKIP = 20


def _resident(i: int) -> str:
    return codes.make_resident_id(f"{i:017d}")


def _register(ids: list[str], data_dir: Path, secret: bytes) -> set[int]:
    """Write the register; returns the residents it flags (risk flags follow the
    register: the fill leaves them out of its pooled tubes, as a sampler would)."""
    from sampling.lab import synth
    from sampling.lab.register import flags_expr, rkey
    from sampling.lab.sources import register_path
    from sampling.privacy import ResidentHasher

    hasher = ResidentHasher(secret)
    register = (
        synth.generate(len(ids))
        .register.with_columns(
            pl.Series("resident", ids),
            pl.Series("rhash", [hasher.hex(c) for c in ids]),
        )
        .with_columns(rkey())
    )
    path = register_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    register.write_parquet(path)
    flagged = register.with_row_index("i").filter(flags_expr() != "")["i"]
    return set(flagged.to_list())


async def _fill(url: str, data_dir: Path, ids: list[str], flagged: set[int]) -> dict[str, Any]:
    from sampling.api.services import Services
    from sampling.auth.models import Device, DeviceIn
    from sampling.binding.models import Batch, BatchOp, RoundIn, SiteIn
    from sampling.live.archiver import archive_round

    svc = Services.build(
        # A long timeout: on a shared machine a connect can wait seconds for a core.
        Settings(
            redis_url=url,
            data_dir=data_dir,
            secret_hex=SECRET,
            max_batch=10_000,
            redis_timeout=120.0,
        )
    )
    await svc.rounds.create(RoundIn(id=ROUND, name="live bench", pool=10))
    for s in range(SITES):
        await svc.sites.create(
            SiteIn(id=f"S{s}", name=f"point {s}", street="s", community="c", grid="g")
        )
    chosen = [i for i in range(len(ids)) if i % SKIP and i not in flagged]

    async def device(d: int) -> None:
        dev = Device(id=f"fill{d}", role="scanner", site=f"S{d}")
        mine = chosen[d::SITES]
        seq, serial = 0, 100_000_000 + d * 10_000_000
        for start in range(0, len(mine), 1000):
            ops: list[BatchOp] = []
            for k in range(start, min(start + 1000, len(mine)), 10):
                serial += 1
                seq += 1
                tube = codes.make_tube(serial)
                ops.append(BatchOp(op=str(seq), seq=seq, kind="open", tube=tube))
                for i in mine[k : k + 10]:
                    seq += 1
                    ops.append(
                        BatchOp(op=str(seq), seq=seq, kind="scan", tube=tube, resident=ids[i])
                    )
            result = await svc.binder.batch(dev, ROUND, Batch(ops=ops))
            if result.refused:
                raise click.ClickException(f"the fill was refused: {result.results[:3]}")
            done[0] += result.applied
            if done[0] >= done[1]:
                done[1] += 500_000
                console.print(f"  {done[0]:,} operations after {time.monotonic() - t0:.0f} s")

    done = [0, 500_000]
    t0 = time.monotonic()
    await asyncio.gather(*(device(d) for d in range(SITES)))
    fill_s = time.monotonic() - t0
    t0 = time.monotonic()
    await archive_round(svc.redis, data_dir, ROUND)
    archive_s = time.monotonic() - t0
    tokens = {
        "viewer": (await svc.devices.create(DeviceIn(id="dash", role="viewer"))).token,
        "scanners": [
            (await svc.devices.create(DeviceIn(id=f"hh{s}", role="scanner", site=f"S{s}"))).token
            for s in range(SITES)
        ],
    }
    await svc.close()
    return {
        "bound": len(chosen),
        "fill_seconds": round(fill_s, 1),
        "first_archive_seconds": round(archive_s, 1),
        "tokens": tokens,
    }


async def _load(
    port: int,
    tokens: dict[str, Any],
    residents: int,
    seconds: float,
    scan_rate: float,
    poll_rate: float,
) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    lat: list[float] = []
    lags: list[float] = []
    scans = 0

    async def poller(gap: float) -> None:
        c = await _Conn.open(port)
        while time.monotonic() < stop:
            t = time.perf_counter()
            status, body = await c.call("GET", f"/v1/rounds/{ROUND}/live", tokens["viewer"])
            lat.append((time.perf_counter() - t) * 1000)
            if status != 200:
                raise click.ClickException(f"GET /live answered {status}: {body[:200]!r}")
            doc = json.loads(body)
            if doc["archived_at"] is not None:
                lags.append(doc["as_of"] - doc["archived_at"])
            await asyncio.sleep(max(0.0, gap - (time.perf_counter() - t)))

    async def scanner(s: int, token: str, gap: float) -> None:
        nonlocal scans
        c = await _Conn.open(port)
        seq, serial = 0, 900_000_000 + s * 1_000_000
        person = residents + s * 10_000_000  # visitors: not in the register
        while time.monotonic() < stop:
            serial += 1
            seq += 1
            tube = codes.make_tube(serial)
            body = json.dumps({"op": str(seq), "seq": seq, "tube": tube}).encode()
            status, text = await c.call("POST", f"/v1/rounds/{ROUND}/tubes", token, body)
            if status != 201:
                raise click.ClickException(f"open answered {status}: {text[:200]!r}")
            for _ in range(10):
                t = time.perf_counter()
                seq += 1
                person += 1
                scan = {"op": str(seq), "seq": seq, "resident": _resident(person)}
                status, text = await c.call(
                    "POST",
                    f"/v1/rounds/{ROUND}/tubes/{tube}/scans",
                    token,
                    json.dumps(scan).encode(),
                )
                if status != 200:
                    raise click.ClickException(f"scan answered {status}: {text[:200]!r}")
                scans += 1
                await asyncio.sleep(max(0.0, gap - (time.perf_counter() - t)))
                if time.monotonic() >= stop:
                    break

    pollers = 2
    hands = tokens["scanners"]
    t0 = time.monotonic()
    await asyncio.gather(
        *(poller(pollers / poll_rate) for _ in range(pollers)),
        *(scanner(s, tok, len(hands) / scan_rate) for s, tok in enumerate(hands)),
    )
    spent = time.monotonic() - t0
    lat.sort()
    return {
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
        "max_ms": round(lat[-1], 2),
        "requests": len(lat),
        "archive_lag_s": round(max(lags), 1) if lags else None,
        "scans_per_s": round(scans / spent, 1),
    }


def _wait_first_pass(port: int, token: str, since: float, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = httpx.get(
            f"http://127.0.0.1:{port}/v1/rounds/{ROUND}/live",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if resp.status_code == 200 and (resp.json()["archived_at"] or 0) >= since:
            return
        time.sleep(1)
    raise click.ClickException("the served archiver made no pass")


@click.command(name="live")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on the last line.")
@click.option("--residents", type=click.IntRange(min=1000), default=4_400_000, show_default=True)
@click.option("--seconds", type=float, default=120.0, show_default=True, help="Under load.")
@click.option("--scan-rate", type=float, default=200.0, show_default=True, help="Scans/s.")
@click.option("--poll-rate", type=float, default=20.0, show_default=True, help="GET /live per s.")
@click.option("--archive-every", type=float, default=30.0, show_default=True, help="Seconds.")
@click.option("--workers", type=int, default=2, show_default=True, help="API worker processes.")
def bench_live_command(
    as_json: bool,
    residents: int,
    seconds: float,
    scan_rate: float,
    poll_rate: float,
    archive_every: float,
    workers: int,
) -> None:
    """Latency of GET /v1/rounds/{round}/live on a full round under load, and archive lag."""
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        data_dir = Path(tmp)
        with EmbeddedServer(data_dir / "valkey") as valkey:
            console.print(f"register of {residents:,} residents ...")
            t0 = time.monotonic()
            ids = [_resident(i) for i in range(residents)]
            flagged = _register(ids, data_dir, bytes.fromhex(SECRET))
            register_s = time.monotonic() - t0
            console.print("filling the round (95% of the register, bar those it flags) ...")
            fill = asyncio.run(_fill(valkey.url, data_dir, ids, flagged))
            del ids
            console.print(
                f"filled in {fill['fill_seconds']} s, archived in {fill['first_archive_seconds']} s"
            )
            port = free_port()
            env = {
                **os.environ,
                "SAMPLING_REDIS_URL": valkey.url,
                "SAMPLING_DATA_DIR": tmp,
                "SAMPLING_SECRET": SECRET,
                "SAMPLING_DEVICE_RATE": "1000000",
                "SAMPLING_ARCHIVER": "1",
                "SAMPLING_ARCHIVE_EVERY": str(archive_every),
            }
            started = time.time()
            proc = subprocess.Popen(
                [sys.executable, "-m", "sampling.cli", "serve", "--port", str(port),
                 "--workers", str(workers)],
                env=env,
            )  # fmt: skip
            try:
                _wait_ready(port, proc)
                # The load starts once the served archiver has made its own pass,
                # so the lag measured is the running archiver's, not the start-up.
                _wait_first_pass(port, fill["tokens"]["viewer"], started)
                console.print(f"load for {seconds:.0f} s: {scan_rate:.0f} scans/s, "
                              f"{poll_rate:.0f} GET /live per s")  # fmt: skip
                load = asyncio.run(
                    _load(port, fill["tokens"], residents, seconds, scan_rate, poll_rate)
                )
            finally:
                proc.terminate()
                proc.wait(60)
    result = {
        "residents": residents,
        "bound": fill["bound"],
        **load,
        "archive_every_s": archive_every,
        "register_seconds": round(register_s, 1),
        "fill_seconds": fill["fill_seconds"],
        "first_archive_seconds": fill["first_archive_seconds"],
        "seconds": seconds,
        "workers": workers,
        "cpus": os.cpu_count(),
    }
    for key, value in result.items():
        console.print(f"  {key:24} {value}")
    if as_json:
        click.echo(json.dumps(result))
