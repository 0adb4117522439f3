"""HTTP route of the register: a community's spreadsheet uploaded, dry run first.

The body is the file itself (CSV, XLSX or Parquet, told apart by its first
bytes). A ``registrar`` token changes only its own communities; the district
admin any. A stored import makes every open round's risk flags follow the
register and is journaled with who and the counts, as from the CLI.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery

from sampling.api.auth import current_device, services
from sampling.auth.models import Device
from sampling.errors import BadInput
from sampling.lab.models import RegisterReport, RegisterScope
from sampling.lab.register import import_register
from sampling.lab.riskfollow import register_changed

#: A district's community files are a few MB; a whole-register Parquet a few tens.
MAX_BODY = 64 * 1024 * 1024
_ROLES = {"roles": ("admin", "registrar")}


def _suffix(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return ".xlsx"
    if head.startswith(b"PAR1"):
        return ".parquet"
    return ".csv"


class RegisterController(Controller):
    path = "/v1/register"
    tags = ["lab"]
    dependencies = {"device": Provide(current_device)}

    @post(
        "/",
        operation_id="uploadRegister",
        opt=_ROLES,
        status_code=200,
        request_max_body_size=MAX_BODY,
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        device: NamedDependency[Device],
        replace: FromQuery[RegisterScope] = "community",
        dry_run: FromQuery[bool] = False,
        name: FromQuery[str] = "register",
    ) -> RegisterReport:
        """Upload a register file (CSV, XLSX or Parquet) as the body; dry run first.

        It replaces only the communities (``replace=grid``: the grids; ``replace=all``:
        the whole register, admin only) it names; the
        report lists, per community, households and residents added, removed and
        changed. A registrar may upload only its own communities.
        """
        body = await request.body()
        if not body.strip():
            raise BadInput("the body is empty: send the register file (CSV, XLSX or Parquet)")
        svc = services(request)
        allowed = frozenset(device.communities) if device.role == "registrar" else None
        label = Path(name).name[:100] or "register"

        def work() -> RegisterReport:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"upload{_suffix(body[:4])}"
                path.write_bytes(body)
                report, _ = import_register(
                    path, svc.hasher, svc.settings.data_dir, dry_run=dry_run, scope=replace,
                    communities=allowed, source=label,
                )  # fmt: skip
                return report

        report = await anyio.to_thread.run_sync(work)
        if not dry_run and report.rows_stored:
            await register_changed(
                svc.redis, svc.settings.data_dir, report, by=device.id, file=label
            )
        return report
