"""HTTP routes of a round's closing report (``sampling.lab.closing``).

Closing the round writes it (``POST /v1/rounds/{round}/close``); these read it
back, as JSON numbers or as the written files, and write it again. The admin
downloads the full report; a viewer gets the copy written without names and
phone numbers (as a viewer's door list), never the full one.
"""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery

from sampling.api.auth import current_device, services
from sampling.api.headers import attachment
from sampling.auth.models import Device
from sampling.closing import NoClosingReport, write_report
from sampling.errors import NotFound
from sampling.lab import closing, report

ClosingFormat = Literal["json", "pdf", "xlsx", "csv"]
_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
_READ = {"roles": ("admin", "viewer")}
_WRITE = {"roles": ("admin",)}


def _variant(device: Device) -> closing.Variant:
    return "admin" if device.role in report.PERSONAL_ROLES else "viewer"


class ClosingController(Controller):
    path = "/v1/rounds/{round_id:str}/closing-report"
    tags = ["lab"]
    dependencies = {"device": Provide(current_device)}

    @get("/", operation_id="closingReport", opt=_READ)
    async def get_report(
        self,
        round_id: FromPath[str],
        request: Request[Any, Any, Any],
        device: NamedDependency[Device],
        format: FromQuery[ClosingFormat] = "json",
        section: FromQuery[str] = "summary",
    ) -> Response[Any]:
        """The round's closing report as written at its close: the numbers (json), the
        printable PDF, the XLSX (a sheet per section) or one section as CSV
        (``section``: summary, states, coverage_street, coverage_community,
        coverage_grid, resample_open, discrepancies, no_shows). A viewer's copy has no
        names or phone numbers."""
        svc = services(request)
        await svc.rounds.get(round_id)  # an unknown round is that, not "no report"
        data_dir = svc.settings.data_dir
        summary = closing.read_summary(data_dir, round_id)
        if summary is None:
            raise NoClosingReport(
                f"round {round_id} has no closing report: it is written when the round "
                "closes (POST .../close), or again with POST .../closing-report",
                round=round_id,
            )
        if format == "json":
            return Response(summary)
        if format == "csv" and section not in closing.SECTIONS:
            raise NotFound(f"no section {section[:40]!r}", choose=list(closing.SECTIONS))
        name = closing.file_name(round_id, format, section if format == "csv" else "")
        path = closing.path_of(data_dir, round_id, _variant(device), name)
        if path is None:
            raise NoClosingReport(f"the closing report has no file {name}", round=round_id)
        return Response(
            path.read_bytes(),
            media_type=_MEDIA[format],
            headers={"Content-Disposition": attachment(name)},
        )

    @post("/", operation_id="writeClosingReport", opt=_WRITE, status_code=200)
    async def rewrite(
        self,
        round_id: FromPath[str],
        request: Request[Any, Any, Any],
        device: NamedDependency[Device],
    ) -> closing.ClosingSummary:
        """Write a closed round's closing report again, after an archive pass (late
        results, or a close whose report was cut short); an open round is refused."""
        svc = services(request)
        return await write_report(svc.redis, svc.rounds, svc.lab, svc.settings, round_id)
