"""``python -m loadtest`` / ``sampling loadtest``: a whole round under Locust, then the verifier.

Starts what it needs (an embedded Valkey server, the API with several workers,
a Locust master and workers), plays the round to completion, verifies the
ledger against Redis and the archived journal, and prints one JSON object on
its last line. With ``--host`` it drives a service that is already running.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from loadtest import plan as planning
from loadtest import stack

if TYPE_CHECKING:
    from sampling.store.client import AnyRedis

console = Console(stderr=True)


def _send(
    http: httpx.Client, method: str, path: str, body: Any = None, *, again: bool = False
) -> httpx.Response:
    """One admin request, waiting out 429/503 (the admin token has a rate limit too);
    ``again``: a call safe to repeat (the bulk ones) is sent again when its answer is lost."""
    for _ in range(100):
        try:
            resp = http.request(method, path, json=body)
        except httpx.TransportError:
            if not again:
                raise
            time.sleep(1.0)
            continue
        if resp.status_code not in (429, 503):
            resp.raise_for_status()
            return resp
        time.sleep(float(resp.headers.get("Retry-After") or 1.0))
    resp.raise_for_status()
    return resp


#: Rows per bulk registration call (the service takes up to 5,000).
BULK = 2_000


def _setup(host: str, admin: str, plan: planning.Plan) -> dict[str, Any]:
    """Round, sites, devices and risk flags, through the API as an admin would: the
    registry in bulk calls (all or nothing each, safe to send again), the risk flags
    5,000 residents a call."""
    h = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=host, headers=h, timeout=60) as http:
        _send(http, "POST", "/v1/rounds", {"id": plan.round_id, "name": "load test", "pool": 10})
        known = {s["id"] for s in _send(http, "GET", "/v1/sites").json()}
        sites = [s for s in plan.sites if s["id"] not in known]
        for start in range(0, len(sites), BULK):
            body = {"sites": sites[start : start + BULK]}
            _send(http, "POST", "/v1/sites/bulk", body, again=True)
        tokens: dict[str, str] = {}
        devices = plan.devices()
        for start in range(0, len(devices), BULK):
            # The tokens are derived from the op: a retry gets the same ones back.
            body = {"op": secrets.token_urlsafe(16), "devices": devices[start : start + BULK]}
            made = _send(http, "POST", "/v1/devices/bulk", body, again=True).json()
            tokens.update((d["device"]["id"], d["token"]) for d in made["devices"])
        plan.set_tokens(tokens)
        for start in range(0, len(plan.risk), 5_000):
            chunk = plan.risk[start : start + 5_000]
            _send(
                http,
                "PUT",
                f"/v1/rounds/{plan.round_id}/risk",
                {
                    "residents": [{"resident": c, "flags": f} for c, f in chunk],
                    "reason": "load test: synthetic residents at risk",
                },
            )
        paths = _send(http, "GET", "/docs/openapi.json").json().get("paths", {})
    return {
        "boxing": any("/boxes" in p for p in paths),
        "lab": any(p.endswith("/results") for p in paths),
    }


#: Locust's row name -> (count key, infix of the percentile keys). The latency target
#: is for a single scan, the sampler's wait; the aggregate also holds offline
#: batches and results uploads.
_ROWS = {"Aggregated": ("requests", ""), "scan": ("scans", "_scan")}


def _aggregate(run_dir: Path) -> dict[str, Any]:
    stats = run_dir / "locust_stats.csv"
    out: dict[str, Any] = {"failures": 0}
    for count, infix in _ROWS.values():
        out.update({count: 0, **{f"p{q}{infix}_ms": None for q in (50, 95, 99)}})
    if stats.exists():
        with stats.open() as f:
            for row in csv.DictReader(f):
                if row["Name"] not in _ROWS:
                    continue
                count, infix = _ROWS[row["Name"]]
                out[count] = int(row["Request Count"])
                out.update({f"p{q}{infix}_ms": float(row[f"{q}%"]) for q in (50, 95, 99)})
                if row["Name"] == "Aggregated":
                    out["failures"] = int(row["Failure Count"])
    shed = errors = 0
    failures = run_dir / "locust_failures.csv"
    if failures.exists():
        for row in csv.DictReader(failures.open()):
            n = int(row["Occurrences"])
            if "shed" in row["Error"]:
                shed += n
            else:
                errors += n
    out.update(shed=shed, errors=errors)
    return out


def _counters(host: str, token: str, round_id: str) -> dict[str, int]:
    try:
        got = httpx.get(
            f"{host}/v1/rounds/{round_id}/counters",
            timeout=5,
            headers={"Authorization": f"Bearer {token}"},
        )
        return dict(got.json()) if got.status_code == 200 else {}
    except httpx.HTTPError:
        return {}


def _play(
    host: str, admin: str, plan: planning.Plan, run_dir: Path, env: dict[str, str], workers: int
) -> float:
    procs = stack.start_locust(host, workers, run_dir, env, stack_port())
    master = procs[0]
    t0 = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} residents"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("round", total=plan.planned, info="starting Locust")
            while master.alive():
                time.sleep(1.0)
                c = _counters(host, admin, plan.round_id)
                elapsed = time.monotonic() - t0
                bound = c.get("bound", 0)
                bar.update(
                    task,
                    completed=bound,
                    info=(
                        f"{c.get('tubes_opened', 0):,} tubes, {c.get('tubes_closed', 0):,} closed, "
                        f"{bound / max(elapsed, 1e-9):,.0f} scans/s"
                    ),
                )
    finally:
        seconds = time.monotonic() - t0
        for p in procs[1:]:
            deadline = time.monotonic() + 15
            while p.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
        for p in reversed(procs):
            p.stop()
    return seconds


def stack_port() -> int:
    from sampling.store.embedded import free_port

    return free_port()


def _client(url: str, *, cluster: bool, timeout: float = 2.0) -> AnyRedis:
    """A client of the run's Redis: a cluster's when an external run's server is one
    (``SAMPLING_REDIS_CLUSTER``, as every command reads it); a plain client on a
    cluster would be answered MOVED for most of the round's keys."""
    from sampling.store.client import connect

    return connect(url, cluster=cluster, timeout=timeout)


def _cluster_setting() -> bool:
    from sampling.cliutil import settings

    return settings().redis_cluster


async def _redis_bytes(url: str, *, cluster: bool = False) -> int:
    """Used memory, summed over a cluster's primaries (the round is on one of them, the
    devices' and claims' keys on others)."""
    from redis.asyncio.cluster import RedisCluster

    redis = _client(url, cluster=cluster)
    try:
        if isinstance(redis, RedisCluster):
            infos = await redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
            return sum(int(info["used_memory"]) for info in infos.values())
        return int((await redis.info("memory"))["used_memory"])
    finally:
        await redis.aclose()


async def _verify(
    url: str,
    secret: bytes,
    plan: planning.Plan,
    run_dir: Path,
    data_dir: Path,
    *,
    cluster: bool = False,
) -> dict[str, Any]:
    from loadtest.verify import verify
    from sampling.privacy import ResidentHasher

    redis = _client(url, cluster=cluster, timeout=60)
    try:
        planned = [code for handheld in plan.handhelds for code, _ in handheld.residents]
        return await verify(
            redis, plan.round_id, ResidentHasher(secret), run_dir, data_dir, planned
        )
    finally:
        await redis.aclose()


async def _admin_token(url: str) -> str:
    from sampling.auth.devices import Devices
    from sampling.auth.models import DeviceIn
    from sampling.store.client import connect

    redis = connect(url)
    try:
        made = await Devices(redis).create(DeviceIn(id="lt-admin", role="admin"))
        return made.token
    finally:
        await redis.aclose()


def run(
    *,
    residents: int,
    seed: int,
    api_workers: int,
    workers: int,
    out: Path | None,
    host: str | None,
    admin_token: str | None,
    redis_url: str | None,
    secret_hex: str | None,
    overload: float,
    pace: float,
    day: float | None,
    peak: int | None,
    max_seconds: float,
    timeout: float,
    outage: float = 0.0,
    outage_share: float = 1 / 3,
) -> dict[str, Any]:
    from sampling.store.embedded import EmbeddedServer, free_port

    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = (out or Path("runs") / f"loadtest-{stamp}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    external = host is not None
    nonce = int(time.time()) if external else seed
    round_id = f"lt-{seed}-{nonce % 10**8}" if external else f"lt-{seed}"
    with console.status(f"building a district of {residents:,} residents"):
        plan = planning.build(
            residents,
            seed=seed,
            workers=workers,
            round_id=round_id,
            run_nonce=nonce,
            overload=overload,
            outage_share=outage_share if outage else 0.0,
        )
    handhelds = len(plan.handhelds)
    console.print(
        f"[bold]{residents:,}[/] residents, {plan.planned:,} expected at "
        f"{len(plan.sites)} sampling points, {handhelds} handhelds "
        f"({sum(handheld.offline for handheld in plan.handhelds)} offline), "
        f"{len(plan.risk):,} risk residents in single tubes"
    )
    peak = peak or max(2 * workers, int(min(handhelds, 200 * max(overload, 1))))
    day = day or max(20.0, residents / 400)
    server = None
    api = None
    secret = bytes.fromhex(secret_hex) if secret_hex else secrets.token_bytes(32)
    # A run directory used before starts empty: an old ledger would fail the verifier.
    for stale in ("data", "ledger", "plan", "surge"):
        shutil.rmtree(run_dir / stale, ignore_errors=True)
    for stale_file in ("end.json", "workers-done.json", "verify.json"):
        (run_dir / stale_file).unlink(missing_ok=True)
    data_dir = run_dir / "data"
    data_dir.mkdir()
    try:
        if not external:
            server = EmbeddedServer(data_dir / "valkey", port=free_port()).start()
            redis_url = server.url
            admin_token = asyncio.run(_admin_token(redis_url))
            port = free_port()
            host = f"http://127.0.0.1:{port}"
            env = {
                **os.environ,
                "SAMPLING_REDIS_URL": redis_url,
                "SAMPLING_DATA_DIR": str(data_dir),
                "SAMPLING_SECRET": secret.hex(),
            }
            with console.status(f"starting the API ({api_workers} workers)"):
                api = stack.start_api(port, api_workers, env, run_dir)
        assert host is not None
        if not admin_token:
            raise click.ClickException("--admin-token (or LT_ADMIN_TOKEN) is needed with --host")
        with console.status(f"registering {len(plan.devices()):,} devices"):
            t_setup = time.monotonic()
            features = _setup(host, admin_token, plan)
            setup_seconds = round(time.monotonic() - t_setup, 1)
        console.print(
            f"set up in {setup_seconds:.1f} s: {len(plan.sites):,} sites, "
            f"{len(plan.devices()):,} devices, {len(plan.risk):,} risk flags"
        )
        plan.write(run_dir / "plan")
        console.print(
            f"boxing routes: {'yes' if features['boxing'] else 'absent: no sealers'}; "
            f"lab result routes: {'yes' if features['lab'] else 'absent: skipped'}"
        )
        env = {
            **os.environ,
            "LT_RUN": str(run_dir),
            "LT_WORKERS": str(workers),
            "LT_PACE": str(pace),
            "LT_PEAK": str(peak),
            "LT_CHAIN_USERS": str(max(1, round(peak * 0.1 / workers))),
            "LT_DAY": str(day),
            "LT_MAX_SECONDS": str(max_seconds),
            "LT_TIMEOUT": str(timeout),
            "LT_BOXING": "1" if features["boxing"] else "0",
            "LT_LAB": "1" if features["lab"] else "0",
            "LT_OUTAGE": str(outage),
            # At the start of the morning surge: 7 a.m. of the squeezed day.
            "LT_OUTAGE_AT": str(day * (7 - 6) / 12),
            # An uploader per cut handheld (see Uplink in the locustfile).
            "LT_UPLINKS": str(sum(handheld.outage for handheld in plan.handhelds) if outage else 0),
        }
        console.print(
            f"Locust: {workers} workers, up to {peak} samplers at the 9 a.m. surge, "
            f"a day of {day:.0f} s" + (f", overload x{overload:g}" if overload > 1 else "")
        )
        if outage:
            cut = [handheld for handheld in plan.handhelds if handheld.outage]
            console.print(
                f"outage: {len(cut)} handhelds at {len({h.site for h in cut})} sampling "
                f"points lose the network at {day / 12:.0f} s (7 a.m.) for {outage:g} s"
            )
        seconds = _play(host, admin_token, plan, run_dir, env, workers)
        end = (
            json.loads((run_dir / "end.json").read_text())
            if (run_dir / "end.json").exists()
            else {"reason": "master exited"}
        )
        stats = _aggregate(run_dir)
        result: dict[str, Any] = {
            "residents": residents,
            "planned": plan.planned,
            "end": end["reason"],
            "setup_seconds": setup_seconds,
        }
        if api is not None:
            api.stop()
            api = None
        if redis_url and (server is not None or secret_hex):
            # The embedded server is a single one; an external one is what the settings say.
            cluster = server is None and _cluster_setting()
            redis_bytes = asyncio.run(_redis_bytes(redis_url, cluster=cluster))
            with console.status("verifying the ledger against Redis and the journal"):
                checked = asyncio.run(
                    _verify(redis_url, secret, plan, run_dir, data_dir, cluster=cluster)
                )
        else:
            console.print("[yellow]no --redis-url/--secret: the verifier is skipped[/]")
            redis_bytes, checked = 0, {"lost": None, "doubled": None}
        (run_dir / "verify.json").write_text(json.dumps(checked, indent=1, default=str))
        from loadtest import charts, surge

        charts.write(run_dir, title=f"{residents:,} residents: {run_dir.name}")
        requests = stats["requests"]
        result.update(
            {
                "requests": requests,
                "seconds": round(seconds, 1),
                "requests_per_s": round(requests / seconds, 1) if seconds else 0.0,
                "p50_ms": stats["p50_ms"],
                "p95_ms": stats["p95_ms"],
                "p99_ms": stats["p99_ms"],
                "scans": stats["scans"],
                "p50_scan_ms": stats["p50_scan_ms"],
                "p95_scan_ms": stats["p95_scan_ms"],
                "p99_scan_ms": stats["p99_scan_ms"],
                "errors": stats["errors"],
                "shed": stats["shed"],
                **{
                    k: v
                    for k, v in checked.items()
                    if k not in ("mismatched_tubes", "scan_answers")
                },
                "redis_bytes": redis_bytes,
                **(surge.summarize(run_dir) if outage else {}),
                "overload": overload,
                "workers": workers,
                "api_workers": api_workers,
                "run_dir": str(run_dir),
            }
        )
        return result
    finally:
        if api is not None:
            api.stop()
        if server is not None:
            server.stop()


@click.command(name="loadtest")
@click.option("--residents", type=int, default=20_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Locust worker processes.")
@click.option("--api-workers", type=int, default=2, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Run directory (default runs/loadtest-<time>).",
)
@click.option("--host", default=None, help="Drive this running service instead of starting one.")
@click.option("--admin-token", envvar="LT_ADMIN_TOKEN", default=None)
@click.option(
    "--redis-url",
    envvar="SAMPLING_REDIS_URL",
    default=None,
    help="With --host: the service's Redis, for the verifier.",
)
@click.option(
    "--secret",
    "secret_hex",
    envvar="SAMPLING_SECRET",
    default=None,
    help="With --host: the service's resident-hash secret, for the verifier.",
)
@click.option(
    "--overload",
    type=float,
    default=1.0,
    show_default=True,
    help="Multiply the samplers (and cut their queues) by this.",
)
@click.option(
    "--pace",
    type=float,
    default=0.1,
    show_default=True,
    help="Seconds between one handheld's operations (the field's ~12 s, squeezed).",
)
@click.option("--day", type=float, default=None, help="Seconds the sampling day is squeezed into.")
@click.option("--peak", type=int, default=None, help="Samplers at the 9 a.m. surge.")
@click.option("--max-seconds", type=float, default=3_600.0, show_default=True)
@click.option(
    "--timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds a request may take before the handheld retries it.",
)
@click.option(
    "--outage",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Cut the network of the handhelds of --outage-share of the sampling points at the "
    "start of the morning surge for this long; they queue and upload on reconnecting.",
)
@click.option(
    "--outage-share",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=1 / 3,
    show_default="a third",
    help="Share of the sampling points whose handhelds the outage cuts.",
)
def loadtest(**options: Any) -> None:
    """Play a whole round against the service under Locust, then verify nothing was lost."""

    def _terminated(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so the children are stopped on the way out

    signal.signal(signal.SIGTERM, _terminated)
    try:
        result = run(**options)
    except (RuntimeError, httpx.HTTPError) as exc:
        raise click.ClickException(str(exc)) from exc
    from loadtest.verify import clean

    ok = clean(result) if result.get("lost") is not None else True
    console.print(
        (
            "[green]verified: nothing lost, nothing doubled[/]"
            if ok
            else "[red]the verifier found problems[/]"
        )
        + f" (run dir {result['run_dir']})"
    )
    click.echo(json.dumps(result))
    if not ok:
        sys.exit(1)
