"""The ``sampling`` command.

The root registers the domains' command groups by name; each is imported only
when called (``LazyGroup``), so ``sampling round list`` does not pay for OpenCV
or Polars. What the commands share is in ``sampling.cliutil``, which the domains
import: none imports this module back.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from sampling.adminlog import cli_user
from sampling.cliutil import console, locked, run, services_for, settings

if TYPE_CHECKING:
    from sampling.lab.closing import ClosingSummary
    from sampling.lab.mllp import Running
    from sampling.settings import Settings


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A click group whose subcommands live in other modules, imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        present = [n for n, target in self.lazy.items() if _module_exists(target.partition(":")[0])]
        return sorted([*super().list_commands(ctx), *present])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, _, attr = self.lazy[name].partition(":")
            try:
                cmd: click.Command = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise click.ClickException(f"'{name}' is not available: {exc}") from exc
            return cmd
        return super().get_command(ctx, name)


@click.group(
    cls=LazyGroup,
    lazy={
        "decode": "sampling.scan.cli:decode_command",
        "boxes": "sampling.boxing.cli:boxes",
        "register": "sampling.lab.cli:register",
        "results": "sampling.lab.cli:results",
        "reconcile": "sampling.lab.cli:reconcile",
        "coverage": "sampling.lab.cli:coverage",
        "doors": "sampling.lab.cli:doors",
        "loadtest": "loadtest.cli:loadtest",
        "audit": "sampling.audit:audit_command",
    },
)
@click.version_option(package_name="sampling")
def main() -> None:
    """Sample tracking for city-scale mass testing.

    Without SAMPLING_REDIS_URL every command uses the embedded Valkey server in
    SAMPLING_DATA_DIR (default ./.sampling).
    """


# -- serve ----------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Bind address (default SAMPLING_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default SAMPLING_PORT or 8000).")
@click.option("--workers", type=int, default=None, help="API worker processes.")
@click.option("--mllp-port", type=int, default=None, help="Also take HL7 v2 results over MLLP.")
@click.option("--mllp-device", default="", help="The registered lab device the MLLP feed is.")
@click.option("--mllp-round", default="", help="Round for MLLP results (default: latest open).")
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    mllp_port: int | None,
    mllp_device: str,
    mllp_round: str,
) -> None:
    """Run the API (and the embedded Valkey server unless SAMPLING_REDIS_URL is set)."""
    import uvicorn

    from sampling.store.embedded import ServerStartError
    from sampling.store.lock import DirectoryLocked
    from sampling.store.runtime import embedded_for, serve_lock

    cfg = settings()
    env = os.environ
    # The workers archive in the background, one leading (SAMPLING_ARCHIVER=0: off).
    env.setdefault("SAMPLING_ARCHIVER", "1")
    lock = server = None
    if not cfg.redis_url:
        # One server per data directory: the lock comes before any file in it is
        # touched (the secret included). With a URL, many serve processes share
        # one server by design.
        try:
            lock = serve_lock(cfg)
        except DirectoryLocked as exc:
            raise locked(exc) from exc
        try:
            server = embedded_for(cfg).start()
        except ServerStartError as exc:
            lock.release()
            raise click.ClickException(
                f"the embedded Valkey server could not start: {exc}"
            ) from exc
        env["SAMPLING_REDIS_URL"] = server.url
        console.print(f"[green]embedded Valkey[/] at {server.url} (data in {server.data_dir})")
    env["SAMPLING_SECRET"] = cfg.secret().hex()  # every worker hashes with the same key
    mllp = None
    try:
        url = server.url if server is not None else cfg.redis_url
        mllp = _start_mllp(cfg, url, host or cfg.host, mllp_port,
                           mllp_device, mllp_round)  # fmt: skip
        # uvicorn answers SIGTERM by shutting down, then raises the signal again
        # against the handler it found: the default one would end this process
        # before the `finally` below stops the embedded server (left running, it
        # holds the data directory's socket). This handler ends it through `finally`.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        uvicorn.run(
            "sampling.api.app:create_app",
            factory=True,
            host=host or cfg.host,
            port=port or cfg.port,
            workers=workers or cfg.workers,
            log_level="warning",
            access_log=False,
            # One socket write per response, not uvicorn's two (sampling/api/http.py).
            http="sampling.api.http:OneWriteHttpTools",
            # Open dashboards' event streams never end by themselves: a stop waits
            # this long for them, then closes them.
            timeout_graceful_shutdown=5,
        )
    finally:
        if mllp is not None:
            mllp.stop()
        if server is not None:
            server.stop()
            console.print("embedded Valkey stopped")
        if lock is not None:
            lock.release()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _start_mllp(
    cfg: Settings, url: str, host: str, port: int | None, device: str, round_id: str
) -> Running | None:
    """The MLLP listener for ``serve --mllp-port``, or None without one."""
    if port is None:
        return None
    if not device:
        raise click.UsageError("--mllp-port needs --mllp-device: the lab device the feed is")
    from sampling.lab.mllp import Running

    try:
        running = Running(cfg, url, host=host, port=port, device_id=device, round_id=round_id)
        running.start()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"[green]MLLP[/] on {host}:{port} for lab device {device}")
    return running


# -- rounds, sites, devices --------------------------------------------------------


@main.group(name="round")
def round_() -> None:
    """Create, list and close rounds."""


@round_.command(name="create")
@click.argument("round_id")
@click.option("--name", required=True)
@click.option("--pool", type=click.Choice(["1", "5", "10", "20"]), default="10")
def round_create(round_id: str, name: str, pool: str) -> None:
    from sampling.binding.models import RoundIn

    async def go(url: str) -> None:
        async with services_for(url) as svc:
            made = await svc.rounds.create(
                RoundIn(id=round_id, name=name, pool=int(pool)), by=cli_user()
            )
        click.echo(f"round {made.id} open (pool {made.pool})")

    run(go)


@round_.command(name="list")
def round_list() -> None:
    async def go(url: str) -> None:
        table = Table("round", "name", "pool", "state", "bound", "tubes")
        async with services_for(url) as svc:
            for found in await svc.rounds.all():
                counts = await svc.rounds.counters(found.id)
                table.add_row(
                    found.id,
                    found.name,
                    str(found.pool),
                    found.state,
                    str(counts.get("bound", 0)),
                    str(counts.get("tubes_opened", 0)),
                )
        Console().print(table)

    run(go)


@round_.command(name="close")
@click.argument("round_id")
@click.option("--reason", default="", help="Why, when closing corrects a mistake (journaled).")
@click.option("--json", "as_json", is_flag=True, help="Print the report's summary as JSON.")
def round_close(round_id: str, reason: str, as_json: bool) -> None:
    """Close a round: no more scans; archive it and write its closing report."""
    from sampling.closing import close_round

    async def go(url: str) -> ClosingSummary:
        async with services_for(url) as svc:
            _, summary = await close_round(svc.redis, svc.rounds, svc.lab, svc.settings,
                                           round_id, by=cli_user(), reason=reason)  # fmt: skip
        return summary

    summary = run(go)
    if not as_json:
        click.echo(f"round {round_id} closed")
    _closing_echo(summary, as_json)


@round_.command(name="report")
@click.argument("round_id")
@click.option("--json", "as_json", is_flag=True, help="Print the report's summary as JSON.")
def round_report(round_id: str, as_json: bool) -> None:
    """Write a closed round's closing report again (archived first): after a crash
    between the close and the report, or to take in results that came late."""
    from sampling.closing import write_report

    async def go(url: str) -> ClosingSummary:
        async with services_for(url) as svc:
            return await write_report(svc.redis, svc.rounds, svc.lab, svc.settings, round_id)

    _closing_echo(run(go), as_json)


def _closing_echo(summary: ClosingSummary, as_json: bool) -> None:
    import msgspec

    from sampling.lab import closing

    cfg = settings()
    if as_json:
        click.echo(msgspec.json.encode(summary).decode())
        return
    for item, value in closing.summary_rows(summary, cfg.tz):
        click.echo(f"{item}: {value}")
    where = closing.directory(cfg.data_dir, summary.round)
    click.echo(f"closing report: {where}/admin (full), {where}/viewer (no names, phones)")


@main.group()
def site() -> None:
    """Register sampling sites."""


@site.command(name="create")
@click.argument("site_id")
@click.option("--name", required=True)
@click.option("--street", required=True)
@click.option("--community", required=True)
@click.option("--grid", required=True)
def site_create(site_id: str, name: str, street: str, community: str, grid: str) -> None:
    from sampling.binding.models import SiteIn

    async def go(url: str) -> None:
        async with services_for(url) as svc:
            await svc.sites.create(
                SiteIn(id=site_id, name=name, street=street, community=community, grid=grid),
                by=cli_user(),
            )
        click.echo(f"site {site_id} registered")

    run(go)


@site.command(name="list")
def site_list() -> None:
    async def go(url: str) -> None:
        table = Table("site", "name", "street", "community", "grid")
        async with services_for(url) as svc:
            for s in await svc.sites.all():
                table.add_row(s.id, s.name, s.street, s.community, s.grid)
        Console().print(table)

    run(go)


@main.group()
def device() -> None:
    """Register devices and their tokens; revoke them."""


@device.command(name="create")
@click.argument("device_id")
@click.option(
    "--role",
    required=True,
    type=click.Choice(
        ["scanner", "sealer", "courier", "lab", "admin", "grid", "viewer", "registrar"]
    ),
)
@click.option("--site", "site_id", default="")
@click.option("--lab", default="")
@click.option("--grid", default="")
@click.option("--expires-in", type=int, default=None, help="Seconds until the token expires.")
@click.option("--supervisor", is_flag=True, help="A lab device that resolves held results.")
@click.option(
    "--community",
    "communities",
    multiple=True,
    help="A registrar's community (repeat for several): the register it may upload.",
)
def device_create(
    device_id: str,
    role: str,
    site_id: str,
    lab: str,
    grid: str,
    expires_in: int | None,
    supervisor: bool,
    communities: tuple[str, ...],
) -> None:
    """Register a device and print its token (shown once)."""
    from sampling.auth.models import DeviceIn
    from sampling.errors import NotFound

    if role == "grid" and not grid:
        raise click.UsageError("a grid device needs --grid (the grid whose door lists it reads)")

    async def go(url: str) -> None:
        async with services_for(url) as svc:
            if site_id:
                try:
                    await svc.sites.get(site_id)
                except NotFound:
                    raise click.ClickException(
                        f"no site {site_id}: register it first with "
                        f"'sampling site create {site_id}'"
                    ) from None
            made = await svc.devices.create(
                DeviceIn(
                    id=device_id,
                    role=role,  # type: ignore[arg-type]
                    site=site_id,
                    lab=lab,
                    grid=grid,
                    supervisor=supervisor,
                    expires_in=expires_in,
                    communities=list(communities),
                ),
                by=cli_user(),
            )
        console.print(f"device {device_id} ({role}) registered; its token, shown once:")
        click.echo(made.token)

    run(go)


@device.command(name="list")
def device_list() -> None:
    async def go(url: str) -> None:
        table = Table("device", "role", "site", "lab", "grid", "revoked")
        async with services_for(url) as svc:
            for d in await svc.devices.all():
                table.add_row(d.id, d.role, d.site, d.lab, d.grid, "yes" if d.revoked else "")
        Console().print(table)

    run(go)


@device.command(name="revoke")
@click.argument("device_id")
@click.option("--reason", default="", help="Why (journaled).")
def device_revoke(device_id: str, reason: str) -> None:
    async def go(url: str) -> None:
        async with services_for(url) as svc:
            await svc.devices.revoke(device_id, by=cli_user(), reason=reason)
        click.echo(f"device {device_id} revoked")

    run(go)


@device.command(name="pair")
@click.argument("device_id")
@click.option(
    "--svg", type=click.Path(dir_okay=False), default=None, help="Also write the QR code."
)
def device_pair(device_id: str, svg: str | None) -> None:
    """Make a one-time pairing code for a handheld (10 minutes), as text and QR code."""
    import segno

    from sampling import localtime

    async def go(url: str) -> None:
        async with services_for(url) as svc:
            made = await svc.pairing.create(device_id)
            tz = svc.settings.tz
        qr = segno.make_qr(made.code, error="m")
        qr.terminal(compact=True)
        if svg:
            qr.save(svg, kind="svg", scale=8, border=2)
        console.print(
            f"pairing code for {device_id}, valid once until "
            f"{localtime.stamp(made.expires_at, tz)}; enter it on the handheld's page:"
        )
        click.echo(made.code)

    run(go)


# -- archive ----------------------------------------------------------------------


@main.command()
@click.option("--round", "round_id", default=None, help="One round (default: every round).")
def archive(round_id: str | None) -> None:
    """Drain each round's journal into Parquet (resumable, idempotent), then derive tables."""
    from rich.progress import Progress

    from sampling import archive as arch
    from sampling.live import tables as live_tables

    cfg = settings()

    async def go(url: str) -> None:
        async with services_for(url) as svc:
            ids = [round_id] if round_id else [r.id for r in await svc.rounds.all()]
            with Progress(console=console, transient=True) as bar:
                for rid in ids:
                    await svc.rounds.get(rid)
                    task = bar.add_task(f"archiving {rid}", total=None)
                    as_of = time.time()  # everything accepted before now is in this pass
                    report = await arch.drain(
                        svc.redis, rid, cfg.data_dir, progress=partial(bar.advance, task)
                    )
                    files = arch.materialize(cfg.data_dir, rid)
                    live_tables.write(cfg.data_dir, rid, as_of)
                    console.print(
                        f"round {rid}: {report.entries} journal entries archived in "
                        f"{report.parts} parts; {report.journal_left} left in Redis; "
                        f"tables: {', '.join(files)} in {report.directory}"
                    )

    run(go)


# -- demo and benchmarks ---------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on the last line.")
@click.option("--residents", type=int, default=2000, show_default=True)
@click.option("--sites", "n_sites", type=int, default=6, show_default=True)
@click.option(
    "--out",
    "out_dir",
    default="demo-out",
    show_default=True,
    help="Folder for the demo's data, reports and door lists (wiped first).",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--serve",
    is_flag=True,
    help="After the round, keep the API and the pages (dashboard) serving until Ctrl-C.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port for --serve (default: a free one).",
)
def demo(
    as_json: bool,
    residents: int,
    n_sites: int,
    out_dir: str,
    seed: int,
    serve: bool,
    port: int | None,
) -> None:
    """Run a whole synthetic round through the real API on the embedded server."""
    import json
    from pathlib import Path

    from sampling.demo.run import run_demo
    from sampling.store.lock import DirectoryLocked

    if port is not None and not serve:
        raise click.UsageError("--port is for --serve")

    def ready(summary: dict[str, Any]) -> None:
        # With --serve the summary comes before the serving, which lasts until Ctrl-C.
        if as_json:
            click.echo(json.dumps(summary, ensure_ascii=False), nl=True)
            sys.stdout.flush()

    try:
        summary = run_demo(
            Path(out_dir),
            residents=residents,
            n_sites=n_sites,
            seed=seed,
            quiet=as_json,
            serve=serve,
            port=port,
            on_ready=ready,
        )
    except DirectoryLocked as exc:
        raise locked(exc) from exc
    if as_json and not serve:
        click.echo(json.dumps(summary, ensure_ascii=False))
    if summary.get("lost", 0):
        sys.exit(1)


@main.group(
    cls=LazyGroup,
    lazy={
        "binding": "sampling.binding.bench:bench_binding_command",
        "decode": "sampling.scan.cli:bench_decode_command",
        "reconcile": "sampling.lab.bench:bench_reconcile_command",
        "live": "sampling.live.bench:bench_live_command",
    },
)
def bench() -> None:
    """Benchmarks that print their figures (--json: one JSON object on the last line)."""


if __name__ == "__main__":
    main()
