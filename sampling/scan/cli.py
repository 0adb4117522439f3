"""Click commands of the scan package: ``decode`` and ``bench decode``.

They are plain :class:`click.Command` objects; the main CLI group mounts them
(``sampling decode``, ``sampling bench decode``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from sampling.scan import bench, frames, images, pipeline
from sampling.scan.errors import ImageTooLarge, NotAnImage, TooManyFrames

if TYPE_CHECKING:
    from sampling.scan.models import DecodeResult

_encoder = msgspec.json.Encoder()


def _line(obj: object) -> None:
    click.echo(_encoder.encode(obj).decode())


def _load(path: Path) -> images.Gray:
    try:
        return images.load(path.read_bytes(), name=str(path))
    except (NotAnImage, ImageTooLarge) as exc:
        raise click.UsageError(f"{path}: {exc}") from exc


def _record(image: str | list[str], result: DecodeResult, with_frames: bool) -> dict[str, object]:
    rec: dict[str, object] = {
        "image": image,
        "codes": [msgspec.to_builtins(c) for c in result.codes],
        "ms": result.ms,
    }
    if with_frames:
        rec["frames_used"] = list(result.frames_used)
    rec["preparation"] = result.preparation
    return rec


@click.command("decode")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--frames",
    "as_frames",
    is_flag=True,
    help="The images are frames of one label: combine them, print one line.",
)
@click.option(
    "--budget-ms",
    type=click.FloatRange(min=0),
    default=pipeline.DEFAULT_BUDGET_MS,
    show_default=True,
    help="Time budget per image for the harder preparations.",
)
def decode_command(paths: tuple[Path, ...], as_frames: bool, budget_ms: float) -> None:
    """Read the codes in photos; one JSON object per line per image."""
    if as_frames:
        loaded = [_load(p) for p in paths]
        try:
            result = frames.decode_frames(loaded, budget_ms=budget_ms)
        except TooManyFrames as exc:
            raise click.UsageError(str(exc)) from exc
        _line(_record([str(p) for p in paths], result, with_frames=True))
        return
    for p in paths:
        _line(_record(str(p), pipeline.decode(_load(p), budget_ms=budget_ms), with_frames=False))


@click.command("decode")
@click.option("--json", "as_json", is_flag=True, help="Also print the summary as one JSON line.")
@click.option("--count", type=click.IntRange(min=1), default=bench.DEFAULT_COUNT, show_default=True)
@click.option("--seed", type=int, default=bench.DEFAULT_SEED, show_default=True)
@click.option(
    "--budget-ms",
    type=click.FloatRange(min=0),
    default=pipeline.DEFAULT_BUDGET_MS,
    show_default=True,
)
def bench_decode_command(as_json: bool, count: int, seed: int, budget_ms: float) -> None:
    """Decode rate and time of zxing-cpp, ZBar and our pipeline on generated field photos."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    err = Console(stderr=True)
    with Progress(console=err, transient=True) as prog:
        task = prog.add_task("decoding", total=count)
        rows = bench.run(count, seed, budget_ms, progress=lambda: prog.advance(task))
    summary = bench.summarize(rows)

    table = Table(title=f"decode benchmark: {count} photos, seed {seed}, budget {budget_ms} ms")
    table.add_column("condition")
    table.add_column("n", justify="right")
    for m in bench.METHODS:
        table.add_column(m, justify="right")
    for cond, r in summary["per_condition"].items():
        table.add_row(cond, str(r["n"]), *(f"{r[m]:.0%}" for m in bench.METHODS))
    table.add_section()
    table.add_row("glare (all)", "", *(f"{summary[f'glare_rate_{m}']:.0%}" for m in bench.METHODS))
    table.add_row("all", str(count), *(f"{summary[f'rate_{m}']:.0%}" for m in bench.METHODS))
    table.add_row("median ms", "", *(f"{summary[f'median_ms_{m}']:.1f}" for m in bench.METHODS))
    table.add_row("p95 ms", "", *(f"{summary[f'p95_ms_{m}']:.1f}" for m in bench.METHODS))
    out = Console(file=sys.stdout)
    out.print(table)
    out.print(f"glare gain over the better single engine: {summary['glare_gain']:+.0%}")
    if as_json:
        _line(summary)
