"""Click commands of the lab package.

Plain click objects the main CLI mounts: the ``register`` and ``results`` groups
and the ``reconcile``, ``coverage`` and ``doors`` commands. Reports print as
rich tables; ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec
import polars as pl
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from sampling.lab import doors as door_lists
from sampling.lab import report

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from sampling.lab.models import IngestReport, LabResult, RegisterReport
    from sampling.settings import Settings

out = Console()
err = Console(stderr=True)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
#: What a results file may be called (a lab CSV export, HL7 v2).
RESULT_TYPES = (".csv", ".txt", ".hl7", ".oru")


def _settings() -> Settings:
    from sampling.cli import settings

    return settings()


def _busy(text: str) -> AbstractContextManager[Any]:
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
        transient=True,
    )  # fmt: skip
    progress.add_task(text, total=None)
    return progress


def _json(obj: Any) -> None:
    click.echo(msgspec.json.encode(obj).decode())


def _table(frame: pl.DataFrame, title: str, limit: int = 50) -> Table:
    table = Table(title=title, title_justify="left")
    for name in frame.columns:
        numeric = frame.schema[name].is_numeric()
        table.add_column(name, justify="right" if numeric else "left")
    for row in frame.head(limit).iter_rows():
        table.add_row(*["" if v is None else str(v) for v in row])
    if frame.height > limit:
        table.caption = f"{limit} of {frame.height} rows shown"
    return table


def _problems(problems: list[Any], limit: int = 200) -> None:
    if not problems:
        return
    table = Table("row", "reason", "value", title="refused rows", title_justify="left")
    for p in problems[:limit]:
        table.add_row(str(p.row), p.reason, p.value)
    if len(problems) > limit:
        table.caption = f"{limit} of {len(problems)} shown; --json lists them all"
    out.print(table)


# -- register ------------------------------------------------------------------------------


@click.group("register")
def register() -> None:
    """The population register: who lives where."""


@register.command("import")
@click.argument("file", type=_FILE)
@click.option(
    "--dry-run", is_flag=True, help="Check every row and show the changes; store nothing."
)
@click.option(
    "--scope",
    type=click.Choice(["community", "grid", "all"]),
    default="community",
    show_default=True,
    help="What the file replaces: the communities it names, the grids it names, or "
    "the whole register.",
)
@click.option(
    "--round",
    "round_id",
    default=None,
    help="Also report how many residents are flagged for single tubes in this round "
    "(every open round's flags follow the register).",
)
@click.option("--json", "as_json", is_flag=True)  # fmt: skip
def register_import(
    file: Path, dry_run: bool, scope: str, round_id: str | None, as_json: bool
) -> None:
    """Import a register from CSV, XLSX or Parquet (row numbers as in a spreadsheet).

    The file replaces only the communities (or grids) it names; the rest of the
    register stays. Try it with --dry-run first: it shows, per community, the
    households and residents added, removed and changed.
    """
    from sampling.adminlog import cli_user
    from sampling.errors import SamplingError
    from sampling.lab.register import import_register
    from sampling.privacy import ResidentHasher

    cfg = _settings()
    if round_id:
        _known_round(round_id)  # before the register is replaced
    try:
        with _busy(f"checking {file.name}"):
            rep, _ = import_register(file, ResidentHasher(cfg.secret()), cfg.data_dir,
                                     dry_run=dry_run, scope=scope)  # type: ignore[arg-type]  # fmt: skip
    except SamplingError as exc:
        raise click.ClickException(str(exc)) from exc
    if not dry_run and rep.rows_stored:
        flagged = _register_stored(file, rep, round_id, cli_user())
        rep = msgspec.structs.replace(rep, risk_flagged=flagged)
    _register_report(rep, as_json)
    if not rep.rows_stored:
        verb = "would be" if dry_run else "was"
        raise click.ClickException(f"no row of {file.name} {verb} stored: every row was refused")


def _register_stored(file: Path, rep: RegisterReport, round_id: str | None, by: str) -> int:
    """Every open round's risk flags follow the register; the import is journaled."""
    from sampling.cli import redis_for, run
    from sampling.lab.riskfollow import register_changed

    async def go(url: str) -> int:
        redis = redis_for(url)
        try:
            with _busy("setting open rounds' risk flags from the register"):
                return await register_changed(
                    redis, _settings().data_dir, rep, by=by, file=file.name, round_id=round_id
                )
        finally:
            await redis.aclose()

    return run(go)


def _register_report(rep: RegisterReport, as_json: bool) -> None:
    if as_json:
        _json(rep)
        return
    _problems(rep.problems)
    if rep.changes:
        table = Table(
            "community", "households +", "-", "~", "residents +", "-", "~", "before", "after",
            title=f"changes per community ({rep.scope}: {len(rep.replaced)} replaced)",
            title_justify="left",
        )  # fmt: skip
        for c in rep.changes:
            table.add_row(
                c.community, *(str(v) for v in (
                    c.households_added, c.households_removed, c.households_changed,
                    c.residents_added, c.residents_removed, c.residents_changed,
                    c.residents_before, c.residents_after))
            )  # fmt: skip
        out.print(table)
    if rep.kept:
        out.print(f"kept as they were (every row refused): {', '.join(rep.kept)}")
    verb = "would store" if rep.dry_run else "stored"
    out.print(
        f"[bold]{rep.rows_read}[/] rows read = [green]{rep.rows_stored}[/] {verb} + "
        f"[red]{rep.rows_refused}[/] refused"
        + (f"; {rep.risk_flagged} flagged for single tubes" if rep.risk_flagged else "")
        + (f"\nregister: {rep.path} (version {rep.version})" if rep.path else "")
    )


# -- results ----------------------------------------------------------------------------------


@click.group("results")
def results() -> None:
    """Lab results: import (CSV export or HL7 ORU^R01), held conflicts, orphans."""


@results.command("import")
@click.argument("file", type=_FILE)
@click.option("--round", "round_id", required=True)
@click.option("--dry-run", is_flag=True, help="Check and classify every row; store nothing.")
@click.option("--lab", default="", help="The lab, when the file does not name it.")
@click.option("--json", "as_json", is_flag=True)
def results_import(file: Path, round_id: str, dry_run: bool, lab: str, as_json: bool) -> None:
    """Import a results file; every row is stored, a duplicate, held, an orphan or refused."""
    from sampling.adminlog import cli_user
    from sampling.binding.rounds import Rounds
    from sampling.cli import redis_for, run
    from sampling.errors import SamplingError
    from sampling.lab.parse import read_file
    from sampling.lab.results import LabResults

    if file.suffix.lower() not in RESULT_TYPES:
        raise click.ClickException(
            f"{file.name}: unknown file type {file.suffix or '(none)'}; results are read from "
            "a lab CSV export or HL7 v2 ORU^R01 (.csv, .txt, .hl7, .oru)"
        )
    try:
        with _busy(f"reading {file.name}"):
            parsed = read_file(file.name, file.read_bytes(), lab=lab)
    except SamplingError as exc:
        raise click.ClickException(str(exc)) from exc

    waitaof = _settings().durability == "waitaof"

    async def go(url: str) -> IngestReport:
        redis = redis_for(url)
        try:
            await Rounds(redis).get(round_id)
            return await LabResults(redis, waitaof=waitaof).ingest(
                round_id, parsed, device=cli_user(), dry_run=dry_run
            )
        finally:
            await redis.aclose()

    with _busy(f"{'checking' if dry_run else 'storing'} {parsed.rows_in} results"):
        rep = run(go)
    if as_json:
        _json(rep)
        if not rep.accepted:
            raise SystemExit(1)
        return
    _problems(rep.problems)
    verb = "would be" if dry_run else "were"
    out.print(
        f"[bold]{rep.rows_in}[/] rows in = [green]{rep.accepted}[/] accepted + "
        f"[red]{rep.refused}[/] refused; of the accepted, {rep.stored} {verb} stored new, "
        f"{rep.duplicate} duplicates, {rep.held} held for review, {rep.orphan} orphans"
    )
    if not rep.accepted:
        raise click.ClickException(
            f"no row of {file.name} is a result (every row refused): is it a results file?"
        )


def _redis_list(round_id: str, what: str) -> list[Any]:
    from sampling.binding.rounds import Rounds
    from sampling.cli import redis_for, run
    from sampling.lab.results import LabResults

    async def go(url: str) -> list[Any]:
        redis = redis_for(url)
        try:
            await Rounds(redis).get(round_id)
            lab = LabResults(redis)
            return list(await (lab.held(round_id) if what == "held" else lab.orphans(round_id)))
        finally:
            await redis.aclose()

    return run(go)


@results.command("held")
@click.option("--round", "round_id", required=True)
def results_held(round_id: str) -> None:
    """Results held for review: a second result that disagrees with the stored one."""
    tz = _settings().tz
    table = Table("tube", "stored", "held", title=f"held results, round {round_id}")
    for h in _redis_list(round_id, "held"):
        table.add_row(h.tube, _result_words(h.stored, tz), _result_words(h.held, tz))
    out.print(table)


@results.command("resolve")
@click.argument("tube")
@click.option("--round", "round_id", required=True)
@click.option(
    "--decision",
    required=True,
    type=click.Choice(["keep", "held", "retest"]),
    help="keep the stored result, take a held one, or ask the lab to re-test the tube",
)
@click.option("--value", default="", help="With --decision held: the held value to take.")
@click.option("--reason", required=True, help="Why: kept in the journal, shown in the audit.")
@click.option("--by", "by", required=True, help="Who decides (the supervisor's name or id).")
def results_resolve(
    tube: str, round_id: str, decision: str, value: str, reason: str, by: str
) -> None:
    """Resolve a held result: keep the stored one, take a held one, or ask for a re-test.

    Without --value a decision 'held' takes the only held value; with several held
    values, name one (`sampling results held` shows them).
    """
    from sampling.cli import redis_for, run
    from sampling.errors import BadInput
    from sampling.lab.review import Resolve, Resolved, Review

    async def go(url: str) -> Resolved:
        redis = redis_for(url)
        try:
            review = Review(redis)
            chosen = value
            if decision == "held" and not chosen:
                case = await review.case(round_id, tube)
                if len(case.held) != 1:
                    raise BadInput(
                        f"{len(case.held)} values are held for this tube: name one with --value "
                        f"({', '.join(h.value for h in case.held)})"
                    )
                chosen = case.held[0].value
            spec = Resolve(decision=decision, reason=reason, value=chosen)  # type: ignore[arg-type]
            return await review.resolve(round_id, tube, spec, device=None, by=by)
        finally:
            await redis.aclose()

    done = run(go)
    now = done.result.packed() if done.result else "none (re-test asked)"
    out.print(f"tube {done.tube}: {done.decision} by {by}; result now {now}")


@results.command("orphans")
@click.option("--round", "round_id", required=True)
def results_orphans(round_id: str) -> None:
    """Results for tubes no one bound in the round."""
    tz = _settings().tz
    table = Table("tube", "result", title=f"orphan results, round {round_id}")
    for o in _redis_list(round_id, "orphans"):
        table.add_row(o.result.tube, _result_words(o.result, tz))
    out.print(table)


def _result_words(res: LabResult | None, tz: str) -> str:
    return "" if res is None else res.words(tz)


# -- reports -------------------------------------------------------------------------------------


def _collect(round_id: str, names: tuple[str, ...]) -> dict[str, pl.DataFrame]:
    cfg = _settings()
    if not (cfg.data_dir / "archive" / round_id).is_dir():
        _known_round(round_id)  # an unknown round is that, not "no archive"
    try:
        with _busy(f"reconciling round {round_id}"):
            return report.collect(cfg.data_dir, round_id, names)
    except report.ReportError as exc:
        raise click.ClickException(str(exc)) from exc


def _known_round(round_id: str) -> None:
    """A one-line error (exit 1) unless the round exists."""
    from sampling.binding.rounds import Rounds
    from sampling.cli import redis_for, run

    async def go(url: str) -> None:
        redis = redis_for(url)
        try:
            await Rounds(redis).get(round_id)
        finally:
            await redis.aclose()

    run(go)


def _known_grid(grid: str) -> None:
    """A one-line error (exit 1) unless the register or a site names the grid."""
    from sampling.lab import sources

    cfg = _settings()
    known = set(sources.scan_register(cfg.data_dir).select("grid").unique().collect()["grid"])
    if grid in known:
        return
    shown = ", ".join(sorted(str(g) for g in known)[:10]) or "none: import the register first"
    raise click.ClickException(f"no grid {grid} in the register (grids: {shown})")


def _write_all(got: dict[str, pl.DataFrame], directory: Path) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in got.items():
        if name == "states":
            continue  # one row per resident: kept as Parquet only
        path = directory / f"{name}.csv"
        frame.write_csv(path, include_bom=True)
        yield path
    if "states" in got:
        path = directory / "states.parquet"
        got["states"].write_parquet(path)
        yield path


@click.command("reconcile")
@click.option("--round", "round_id", required=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write every report as CSV here (default: <data_dir>/reports/<round>).",
)
@click.option("--json", "as_json", is_flag=True)  # fmt: skip
def reconcile(round_id: str, out_dir: Path | None, as_json: bool) -> None:
    """Every bound resident's state, re-sample orders, coverage, turnaround."""
    got = _collect(round_id, report.NAMES)
    cfg = _settings()
    as_of = report.as_of(cfg.data_dir, round_id)
    summary = report.summary(round_id, got, as_of=as_of)
    target = out_dir or _settings().data_dir / "reports" / round_id
    written = list(_write_all(got, target))
    summary["report_dir"] = str(target)
    if as_json:
        _json(summary)
        return
    out.print(report.as_of_line(as_of, cfg.tz))
    counts = got["state_counts"].with_columns(pl.col("state").cast(pl.String))
    total = pl.DataFrame({"state": ["= bound"], "residents": [summary["bound"]]})
    out.print(_table(pl.concat([counts, total]), f"round {round_id}: every bound resident"))
    orders = got["resample_orders"].select(
        "priority", "order", "order_state", "state", "tube", "name", "phone", "grid",
        "building", "unit", "household", "resample_tube",
    )  # fmt: skip
    out.print(_table(orders, "re-sample orders", limit=20))
    out.print(_table(got["coverage_street"], "coverage per street"))
    out.print(_table(got["turnaround_lab"], "turnaround per lab (minutes from tube closed)"))
    out.print(_table(got["slowest_boxes"], "slowest boxes"))
    out.print(f"{len(written)} report files in {target}")


@click.command("coverage")
@click.option("--round", "round_id", required=True)
@click.option(
    "--level",
    type=click.Choice(["street", "community", "grid"]),
    default="community",
    show_default=True,
)
@click.option("--hourly", is_flag=True, help="Coverage through the round, hour by hour.")
@click.option("--missed", is_flag=True, help="Residents missed in two or more rounds in a row.")
@click.option("--json", "as_json", is_flag=True)  # fmt: skip
def coverage(round_id: str, level: str, hourly: bool, missed: bool, as_json: bool) -> None:
    """Coverage per street, community or grid (vacant homes and residents away excluded)."""
    name = "coverage_hourly" if hourly else "missed_in_a_row" if missed else f"coverage_{level}"
    frame = _collect(round_id, (name,))[name]
    if as_json:
        _json(frame.to_dicts())
        return
    cfg = _settings()
    out.print(report.as_of_line(report.as_of(cfg.data_dir, round_id), cfg.tz))
    out.print(_table(frame, f"round {round_id}: {name.replace('_', ' ')}", limit=400))


@click.command("doors")
@click.option("--grid", required=True)
@click.option("--round", "round_id", required=True)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "xlsx", "pdf"]), default="csv", show_default=True
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)  # fmt: skip
def doors(grid: str, round_id: str, fmt: str, out_path: Path | None, as_json: bool) -> None:
    """The knock-on-door list of one grid, in building, unit and household order."""
    got = _collect(round_id, ("doors",))
    _known_grid(grid)
    frame = got["doors"].filter(pl.col("grid") == grid)
    if as_json:
        _json(frame.to_dicts())
        return
    path = out_path or Path(f"doors-{round_id}-{grid}.{fmt}")
    cfg = _settings()
    line = report.as_of_line(report.as_of(cfg.data_dir, round_id), cfg.tz)
    out.print(line)
    title = f"敲门清单 knock-on-door list: {grid}, round {round_id}; {line}"
    write(frame, path, fmt, title=title, grid=grid, round_id=round_id, tz=cfg.tz)
    out.print(_table(frame, f"grid {grid}: {frame.height} residents to visit", limit=30))
    out.print(f"written: {path}")


def write(frame: pl.DataFrame, path: Path, fmt: str, *, title: str, **pdf: Any) -> Path:
    if fmt == "xlsx":
        return door_lists.write_xlsx(frame, path)
    if fmt == "pdf":
        return door_lists.write_pdf(frame, path, title=title, **pdf)
    return door_lists.write_csv(frame, path)
