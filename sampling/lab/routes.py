"""HTTP routes of the lab package: results upload, held and orphan results, reports.

Thin translations: the Polars work runs in a worker thread (it is CPU-bound and
must not stall the event loop); reports come as JSON, CSV or Parquet, door lists
also as XLSX or PDF. A grid team's token sees only its own grid's list.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
import polars as pl
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody

from sampling.api.auth import current_device, services
from sampling.auth.models import Device
from sampling.errors import BadInput, BatchTooLarge, Forbidden, NotFound
from sampling.lab import doors, report
from sampling.lab.models import HeldResult, IngestReport, OrphanResult, ResultBatch
from sampling.lab.parse import read_file, read_json
from sampling.lab.results import LabResults, check_lab_device

#: Largest JSON batch or file of results, in rows.
MAX_RESULTS = 20_000
ReportFormat = Literal["json", "csv", "parquet"]
DoorFormat = Literal["json", "csv", "parquet", "xlsx", "pdf"]
_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
_LAB = {"roles": ("lab", "admin")}
_READ = {"roles": ("lab", "admin", "viewer")}
_REPORT = {"roles": ("admin", "viewer")}
_DOORS = {"roles": ("admin", "viewer", "grid")}


def _lab(request: Request[Any, Any, Any]) -> LabResults:
    found: LabResults = services(request).lab
    return found


def _data_dir(request: Request[Any, Any, Any]) -> Path:
    path: Path = services(request).settings.data_dir
    return path


async def _collect(data_dir: Path, round_id: str, names: tuple[str, ...]) -> dict[str, Any]:
    def work() -> dict[str, pl.DataFrame]:
        try:
            return report.collect(data_dir, round_id, names)
        except report.ReportError as exc:
            raise NotFound(str(exc), round=round_id) from exc

    return await anyio.to_thread.run_sync(work)


#: The data time of a report's archived tables (epoch seconds; absent when unknown).
AS_OF_HEADER = "Sampling-As-Of"


def _render(
    frame: pl.DataFrame,
    fmt: str,
    name: str,
    *,
    as_of: float | None,
    title: str = "",
    **pdf: Any,
) -> Response[Any]:
    # Row lists keep their shape (a JSON array, a CSV table); the as-of time
    # rides in a header, and in the printed list's title.
    stamp = {AS_OF_HEADER: f"{as_of:.3f}"} if as_of is not None else {}
    if fmt == "json":
        return Response(frame.to_dicts(), headers=stamp)
    buf = io.BytesIO()
    if fmt == "csv":
        frame.write_csv(buf, include_bom=True)
    elif fmt == "parquet":
        frame.write_parquet(buf)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.{fmt}"
            if fmt == "xlsx":
                doors.write_xlsx(frame, path)
            else:
                doors.write_pdf(frame, path, title=title, **pdf)
            buf.write(path.read_bytes())
    return Response(
        buf.getvalue(),
        media_type=_MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"', **stamp},
    )


class LabController(Controller):
    path = "/v1/rounds/{round_id:str}"
    tags = ["lab"]
    dependencies = {
        "device": Provide(current_device),
        "lab": Provide(_lab, sync_to_thread=False),
    }

    @post("/results", operation_id="uploadResults", opt=_LAB, status_code=200)
    async def upload(
        self,
        round_id: FromPath[str],
        data: JSONBody[ResultBatch],
        device: NamedDependency[Device],
        lab: NamedDependency[LabResults],
    ) -> IngestReport:
        """Report results per tube (negative, positive with Ct values, invalid); dry run first.

        Every row comes back as stored, duplicate (stored once already), held (it
        disagrees with the stored result), orphan (no one bound the tube) or refused.
        """
        if len(data.results) > MAX_RESULTS:
            raise BatchTooLarge(f"{len(data.results)} results; the limit is {MAX_RESULTS}")
        parsed = read_json(data.results, lab=device.lab)
        check_lab_device(device, parsed)
        return await lab.ingest(round_id, parsed, device=device.id, dry_run=data.dry_run)

    @post("/results/file", operation_id="uploadResultsFile", opt=_LAB, status_code=200)
    async def upload_file(
        self,
        round_id: FromPath[str],
        request: Request[Any, Any, Any],
        device: NamedDependency[Device],
        lab: NamedDependency[LabResults],
        dry_run: FromQuery[bool] = False,
    ) -> IngestReport:
        """Upload a lab system's CSV export or HL7 v2 ORU^R01 messages as the body."""
        body = await request.body()
        if not body.strip():
            raise BadInput("the body is empty: send the CSV or HL7 text")
        parsed = read_file("", body, lab=device.lab)
        if parsed.rows_in > MAX_RESULTS:
            raise BatchTooLarge(f"{parsed.rows_in} results; the limit is {MAX_RESULTS}")
        check_lab_device(device, parsed)
        return await lab.ingest(round_id, parsed, device=device.id, dry_run=dry_run)

    @get("/results/held", operation_id="heldResults", opt=_READ)
    async def held(
        self, round_id: FromPath[str], device: NamedDependency[Device],
        lab: NamedDependency[LabResults],
    ) -> list[HeldResult]:  # fmt: skip
        """Second results that disagree with the stored one, held for review."""
        return await lab.held(round_id)

    @get("/results/orphans", operation_id="orphanResults", opt=_READ)
    async def orphans(
        self, round_id: FromPath[str], device: NamedDependency[Device],
        lab: NamedDependency[LabResults],
    ) -> list[OrphanResult]:  # fmt: skip
        """Results for tubes no one bound in this round."""
        return await lab.orphans(round_id)

    @get("/reconciliation", operation_id="reconciliation", opt=_REPORT)
    async def reconciliation(
        self, round_id: FromPath[str], request: Request[Any, Any, Any],
        device: NamedDependency[Device],
    ) -> dict[str, Any]:  # fmt: skip
        """The round in numbers: states adding up to the number bound, orders, coverage."""
        names = ("state_counts", "resample_orders", "coverage_street", "coverage_community",
                 "door_sizes")  # fmt: skip
        data_dir = _data_dir(request)
        got = await _collect(data_dir, round_id, names)
        return report.summary(round_id, got, as_of=report.as_of(data_dir, round_id))

    @get("/reports/{name:str}", operation_id="report", opt=_REPORT)
    async def report_frame(
        self,
        round_id: FromPath[str],
        name: FromPath[str],
        request: Request[Any, Any, Any],
        device: NamedDependency[Device],
        format: FromQuery[ReportFormat] = "json",
    ) -> Response[Any]:
        """One report table (state_counts, resample_orders, coverage_grid, ...)."""
        if name not in report.NAMES or name == "states":
            raise NotFound(f"no report {name}", choose=[n for n in report.NAMES if n != "states"])
        data_dir = _data_dir(request)
        got = await _collect(data_dir, round_id, (name,))
        return _render(
            got[name], format, f"{round_id}-{name}", as_of=report.as_of(data_dir, round_id)
        )

    @get("/doors/{grid:str}", operation_id="doorList", opt=_DOORS)
    async def door_list(
        self,
        round_id: FromPath[str],
        grid: FromPath[str],
        request: Request[Any, Any, Any],
        device: NamedDependency[Device],
        format: FromQuery[DoorFormat] = "json",
    ) -> Response[Any]:
        """A grid's knock-on-door list; a grid team's token sees only its own grid, a
        viewer's has no names or phone numbers."""
        if device.role == "grid" and device.grid != grid:
            raise Forbidden("a grid team sees only its own grid's list", grid=device.grid)
        data_dir = _data_dir(request)
        got = await _collect(data_dir, round_id, ("doors",))
        frame = got["doors"].filter(pl.col("grid") == grid)
        if device.role == "viewer":
            # The command centre sees the whole round, but no one's name or phone number.
            frame = frame.drop("name", "phone", strict=False)
        as_of = report.as_of(data_dir, round_id)
        tz = services(request).settings.tz
        title = (
            f"敲门清单 knock-on-door list: {grid}, round {round_id}; {report.as_of_line(as_of, tz)}"
        )
        return _render(frame, format, f"doors-{round_id}-{grid}", as_of=as_of, title=title,
                       grid=grid, round_id=round_id, tz=tz)  # fmt: skip
