"""Risk flags follow the register: rounds' flags set from its labels and colours.

When a round opens, and whenever the register changes while rounds are open,
every open round's register-derived flags are set to exactly what the register
says (yellow or red health code, home isolation), one atomic step per round
(``sampling/binding/risk_derive.lua``), each change journaled. Manual flags
(``PUT /risk``, with a reason) are kept beside them and survive until cleared.

Each derivation carries the register's version: when two imports race, the
older one's derivation arriving last changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio.to_thread

from sampling import adminlog
from sampling.adminlog import Registry
from sampling.binding.risk import Derived, RiskDerivation
from sampling.binding.rounds import Rounds
from sampling.lab import register

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from sampling.lab.models import RegisterReport
    from sampling.store.client import AnyRedis


async def follow(
    redis: AnyRedis, data_dir: Path, *, by: str, rounds: Iterable[str] | None = None
) -> list[Derived]:
    """Set the register's risk flags in ``rounds`` (default: every open round)."""
    version, flagged = await anyio.to_thread.run_sync(register.flagged, data_dir)
    if rounds is None:
        rounds = [r.id for r in await Rounds(redis).all() if r.state == "open"]
    derivation = RiskDerivation(redis)
    return [await derivation.derive(r, flagged, version=version, by=by) for r in rounds]


async def register_changed(
    redis: AnyRedis,
    data_dir: Path,
    report: RegisterReport,
    *,
    by: str,
    file: str,
    round_id: str | None = None,
) -> int:
    """After an import stored rows: every open round's flags follow the register, then
    the import is journaled with who and the counts. Returns the residents flagged in
    ``round_id`` (0 without one)."""
    done = await follow(redis, data_dir, by=by)
    flagged = sum(d.flagged for d in done if d.round == round_id)
    total = {
        name: sum(getattr(c, name) for c in report.changes)
        for name in (
            "households_added", "households_removed", "households_changed",
            "residents_added", "residents_removed", "residents_changed",
        )
    }  # fmt: skip
    replaced = ",".join(report.replaced)
    await Registry(redis).note(
        adminlog.entry(
            "register_import",
            by,
            file=file,
            scope=report.scope,
            replaced=replaced if len(replaced) <= 500 else replaced[:497] + "...",
            rows=report.rows_read,
            stored=report.rows_stored,
            refused=report.rows_refused,
            **total,
            version=report.version,
            round=round_id,
            flagged=flagged or None,
            rounds=",".join(d.round for d in done if d.status == "applied") or None,
        )
    )
    return flagged
