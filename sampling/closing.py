"""Closing a round: the close itself, an archive pass, then the closing report.

One sequence for the CLI (``sampling round close``) and the API
(``POST /v1/rounds/{round}/close``):

1. the round is closed and the close journaled, in one atomic step
   (``sampling.binding.rounds``): from then on no scan is taken;
2. an archive pass drains the journal (the close included) into the round's
   tables, so the report is as of the close, not as of the last background pass;
3. the closing report (``sampling.lab.closing``) is built from those tables and
   written under the data directory, for the admin in full and for viewers
   without names and phone numbers.

A crash after step 1 leaves a closed round without its report (or with an older
one): :func:`write_report` (``sampling round report``,
``POST /v1/rounds/{round}/closing-report``) makes it again, and does so too when
late results should be in it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from sampling.errors import Conflict, NotFound
from sampling.lab import closing
from sampling.live.archiver import archive_round

if TYPE_CHECKING:
    from sampling.binding.models import Round
    from sampling.binding.rounds import Rounds
    from sampling.lab.results import LabResults
    from sampling.settings import Settings
    from sampling.store.client import AnyRedis


class RoundStillOpen(Conflict):
    code = "round_open"


class NoClosingReport(NotFound):
    code = "no_closing_report"


async def _lab_rows(lab: LabResults, round_id: str) -> list[dict[str, Any]]:
    """Orphan and held results as discrepancy rows (they live in Redis, not the archive)."""
    rows: list[dict[str, Any]] = []
    for o in await lab.orphans(round_id):
        rows.append({"kind": "orphan", "box": None, "tube": o.result.tube, "lab": o.result.lab,
                     "residents": None, "detail": f"result: {o.result.outcome}"})  # fmt: skip
    for h in await lab.held(round_id):
        stored = h.stored.outcome if h.stored else "none"
        rows.append({"kind": "held", "box": None, "tube": h.tube, "lab": h.held.lab,
                     "residents": None,
                     "detail": f"stored: {stored}; held: {h.held.outcome}"})  # fmt: skip
    return rows


async def write_report(
    redis: AnyRedis, rounds: Rounds, lab: LabResults, settings: Settings, round_id: str
) -> closing.ClosingSummary:
    """Archive the (closed) round now, then write its closing report."""
    found = await rounds.get(round_id)
    if found.state != "closed":
        raise RoundStillOpen(
            f"round {round_id} is still open: close it first (its report is written then)",
            round=round_id,
        )
    await archive_round(redis, settings.data_dir, round_id)
    extra = await _lab_rows(lab, round_id)

    def work() -> closing.ClosingSummary:
        try:
            built = closing.build(settings.data_dir, round_id, lab_discrepancies=extra)
        except closing.ClosingError as exc:
            raise NotFound(str(exc), round=round_id) from exc
        return closing.write(built, settings.data_dir, settings.tz)

    return await anyio.to_thread.run_sync(partial(work))


async def close_round(
    redis: AnyRedis,
    rounds: Rounds,
    lab: LabResults,
    settings: Settings,
    round_id: str,
    *,
    by: str,
    reason: str = "",
) -> tuple[Round, closing.ClosingSummary]:
    """Close the round, archive it and write its closing report."""
    closed = await rounds.close(round_id, by=by, reason=reason)
    return closed, await write_report(redis, rounds, lab, settings, round_id)
