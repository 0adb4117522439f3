"""Risk flags derived from the register: a round's flags follow the register's labels
and health-code colours, set in one atomic step per round (``risk_derive.lua``).

The register lives in the lab package (a Parquet file); this module takes the
flagged residents as keyed hashes and never reads the register itself. Manual
flags (``Binder.set_risk``, ``risk.lua``) sit beside the derived ones and are
never changed here; the round's flags are the union of both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from sampling import adminlog
from sampling.adminlog import Registry
from sampling.binding.errors import RoundNotFound
from sampling.binding.scripts import RiskDerive
from sampling.schema import Base
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sampling.store.client import AnyRedis

#: Risk buckets (of 256) set per atomic step.
BUCKETS_PER_STEP = 4
_STATUS: dict[int, Literal["applied", "closed", "stale"]] = {1: "applied", 2: "closed", 3: "stale"}


class Derived(Base, frozen=True):
    """What a derivation did in one round."""

    round: str
    #: applied; closed (a closed round keeps its flags); stale (a newer register
    #: version was applied already, nothing written).
    status: Literal["applied", "closed", "stale"]
    version: int
    #: Residents the register flags.
    flagged: int = 0
    #: Residents whose flags in the round changed (each journaled).
    changed: int = 0


class RiskDerivation:
    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._run = Runner(redis)

    async def derive(
        self,
        round_id: str,
        flagged: Sequence[tuple[bytes, str]],
        *,
        version: int,
        by: str = "",
    ) -> Derived:
        """Make ``round_id``'s register-derived flags exactly ``flagged`` (resident hash,
        flags); journaled per changed resident in the round, and once in the admin
        journal when anything changed."""
        by_bucket: list[list[tuple[bytes, str]]] = [[] for _ in range(256)]
        for rhash, flags in flagged:
            by_bucket[rhash[0]].append((rhash, flags))
        n = changed = 0
        status = 1
        # One step per range of buckets: each is atomic for its residents, and none
        # holds the server for long (one step for 50,000 flagged took over 2 s).
        for first in range(0, 256, BUCKETS_PER_STEP):
            residents = [r for b in by_bucket[first : first + BUCKETS_PER_STEP] for r in b]
            call = RiskDerive(round_id=round_id, by=by, version=version, first=first,
                              count=BUCKETS_PER_STEP, residents=residents)  # fmt: skip
            step = await self._run(call)
            status = step.status
            if status != 1:
                # Unknown, closed or stale at the first step: nothing written; a
                # newer register overtaking us midway: the newer one finishes the job.
                break
            n, changed = n + step.flagged, changed + step.changed
        if status == 0:
            raise RoundNotFound(f"no round {round_id}: check the round id", round=round_id)
        done = Derived(
            round=round_id, status=_STATUS[status], version=version, flagged=n, changed=changed
        )
        if changed:
            await Registry(self._redis).note(
                adminlog.entry(
                    "risk", by, round=round_id, n=changed, flagged=n, src="register",
                    version=version,
                )
            )  # fmt: skip
        return done
