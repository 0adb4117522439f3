"""The round a load test plays, deterministic from its seed.

A district of ``residents`` people (:func:`sampling.demo.synth.district`) is cut
into *handhelds*: one sampler's handheld at one sampling point, each with the
queue of residents who will stand in front of it (in household order). About one
handheld in ten loses its network (it queues its scans and uploads them as
offline batches). Vacant homes and residents who are away do not come; everyone
else is in exactly one handheld's queue, so a finished round has every planned
resident bound once. (A "lane" in ``sampling/store/lane.py`` is something else:
a worker's multiplexed Redis connection.)

Handhelds are dealt to Locust workers round-robin (handheld ``i`` to worker ``i % W``),
and each worker also has one sealer per sampling point, and couriers, lab intake
desks and lab systems in proportion to its sampling points and handhelds (see
:func:`chain_devices`), so a worker's users can carry every tube its samplers
close through boxing and intake without talking to other workers. The plan is written as one
JSON file per worker (``plan/worker-<k>.json``) so a worker reads only its share.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sampling.demo.synth import District, district

if TYPE_CHECKING:
    from pathlib import Path

#: Residents per sampling point (a point serves a few grids' worth of people a day).
PER_SITE = 2_500
OFFLINE_SHARE = 0.1
LAB = "L1"


@dataclass
class Handheld:
    index: int
    device: str
    site: str
    offline: bool
    #: (resident code, risk flags) in the order they queue.
    residents: list[tuple[str, str]]
    #: First tube serial of the handheld (each handheld has 100,000 serials of its own).
    tube_base: int
    seed: int
    token: str = ""
    #: The handheld is at a sampling point whose network the outage cuts (``--outage``).
    outage: bool = False


@dataclass
class WorkerPlan:
    index: int
    round_id: str
    handhelds: list[Handheld]
    #: site -> sealer device (id, token); couriers and lab intake desks (id, token).
    sealers: dict[str, tuple[str, str]] = field(default_factory=dict)
    couriers: list[tuple[str, str]] = field(default_factory=list)
    labs: list[tuple[str, str]] = field(default_factory=list)
    #: The lab systems' devices (they upload results): role lab, like the desks.
    labsys: list[tuple[str, str]] = field(default_factory=list)
    viewer: str = ""
    box_base: int = 0


@dataclass
class Plan:
    round_id: str
    residents: int
    planned: int
    sites: list[dict[str, str]]
    risk: list[tuple[str, str]]
    workers: list[WorkerPlan]
    #: Residents of the register nobody will sample (vacant, away): the door-knock list.
    absent: int = 0

    @property
    def handhelds(self) -> list[Handheld]:
        return [handheld for w in self.workers for handheld in w.handhelds]

    def devices(self) -> list[dict[str, str]]:
        """Every device the round needs, as POST /v1/devices bodies."""
        out: list[dict[str, str]] = []
        for w in self.workers:
            out += [
                {"id": handheld.device, "role": "scanner", "site": handheld.site}
                for handheld in w.handhelds
            ]
            out += [{"id": d, "role": "sealer", "site": s} for s, (d, _) in w.sealers.items()]
            out += [{"id": d, "role": "courier"} for d, _ in w.couriers]
            out += [{"id": d, "role": "lab", "lab": LAB} for d, _ in (*w.labs, *w.labsys)]
        out.append({"id": "lt-viewer", "role": "viewer"})
        return out

    def set_tokens(self, tokens: dict[str, str]) -> None:
        for w in self.workers:
            for handheld in w.handhelds:
                handheld.token = tokens[handheld.device]
            w.sealers = {s: (d, tokens[d]) for s, (d, _) in w.sealers.items()}
            w.couriers = [(d, tokens[d]) for d, _ in w.couriers]
            w.labs = [(d, tokens[d]) for d, _ in w.labs]
            w.labsys = [(d, tokens[d]) for d, _ in w.labsys]
            w.viewer = tokens["lt-viewer"]

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for w in self.workers:
            (directory / f"worker-{w.index}.json").write_text(json.dumps(asdict(w)))
        head = {
            "round_id": self.round_id,
            "residents": self.residents,
            "planned": self.planned,
            "absent": self.absent,
            "workers": len(self.workers),
            "handhelds": sum(len(w.handhelds) for w in self.workers),
        }
        (directory / "plan.json").write_text(json.dumps(head))


def load_worker(directory: Path, index: int) -> WorkerPlan:
    raw: dict[str, Any] = json.loads((directory / f"worker-{index}.json").read_text())
    handhelds = [
        Handheld(**{**handheld, "residents": [tuple(r) for r in handheld["residents"]]})
        for handheld in raw.pop("handhelds")
    ]
    w = WorkerPlan(handhelds=handhelds, **raw)
    w.sealers = {s: tuple(v) for s, v in w.sealers.items()}  # type: ignore[misc]
    w.couriers = [tuple(v) for v in w.couriers]  # type: ignore[misc]
    w.labs = [tuple(v) for v in w.labs]  # type: ignore[misc]
    w.labsys = [tuple(v) for v in w.labsys]  # type: ignore[misc]
    return w


def chain_devices(sites: int, handhelds: int) -> tuple[int, int, int]:
    """Couriers, lab intake desks and lab systems for a worker's share of the round.

    A device works one box at a time, so a single desk per worker (enough for a
    20,000-person round) left the lab hours behind in the full one. In the field
    a desk takes in a tube every few seconds while a sampler closes one every two
    minutes: one desk per ~20 handhelds, a courier per ~10 sampling points, a lab
    system per four desks.
    """
    labs = max(1, handhelds // 20)
    return max(1, sites // 10), labs, max(1, labs // 4)


def queue_size(residents: int, overload: float = 1.0) -> int:
    """Residents per handheld: ~300 in small rounds, up to 1,000 in the full one;
    an overload run cuts the queues shorter so more handhelds work at once."""
    size = 300 if residents <= 50_000 else 1_000
    return max(20, int(size / max(overload, 1.0)))


def build(
    residents: int,
    *,
    seed: int = 7,
    workers: int = 2,
    round_id: str = "lt",
    run_nonce: int = 0,
    overload: float = 1.0,
    per_site: int = PER_SITE,
    outage_share: float = 0.0,
) -> Plan:
    """The whole plan; ``run_nonce`` keeps tube and box serials unique across runs
    against one long-lived service (a tube barcode is opened once, ever).
    ``outage_share``: the share of sampling points whose every handheld an outage cuts."""
    n_sites = max(2, residents // per_site)
    d: District = district(residents, n_sites, seed)
    rng = random.Random(seed)
    by_site: dict[str, list[tuple[str, str]]] = {s.id: [] for s in d.sites}
    grid_site = {s.grid: s.id for s in d.sites}
    absent = 0
    risk: list[tuple[str, str]] = []
    for r in d.residents:
        if r.vacant or r.away:
            absent += 1
            continue
        flags = r.risk_flags
        if flags:
            risk.append((r.code, flags))
        by_site[grid_site[r.grid]].append((r.code, flags))
    size = queue_size(residents, overload)
    # Its own generator, so the handhelds of a run without an outage stay as they were.
    cut: set[str] = set()
    if outage_share > 0:
        n_cut = min(len(d.sites), max(1, round(len(d.sites) * outage_share)))
        cut = set(random.Random(seed + 1).sample(sorted(by_site), n_cut))
    handhelds: list[Handheld] = []
    tube_root = (10 + run_nonce % 90) * 10**9
    for site, queue in by_site.items():
        for start in range(0, len(queue), size):
            i = len(handhelds)
            handhelds.append(
                Handheld(
                    index=i,
                    device=f"lt-s{i:05d}",
                    site=site,
                    offline=rng.random() < OFFLINE_SHARE,
                    residents=queue[start : start + size],
                    tube_base=tube_root + i * 100_000,
                    seed=seed * 1_000_003 + i,
                    outage=site in cut,
                )
            )
    # Deal handhelds so each worker gets a mix of sites and of offline handhelds.
    order = sorted(handhelds, key=lambda handheld: (handheld.index * 7919) % max(len(handhelds), 1))
    plans: list[WorkerPlan] = []
    box_root = (1 + run_nonce % 9) * 10**8
    for k in range(workers):
        mine = [handheld for n, handheld in enumerate(order) if n % workers == k]
        sites = sorted({handheld.site for handheld in mine})
        n_couriers, n_labs, n_labsys = chain_devices(len(sites), len(mine))
        plans.append(
            WorkerPlan(
                index=k,
                round_id=round_id,
                handhelds=mine,
                sealers={s: (f"lt-w{k}-seal-{s}", "") for s in sites},
                couriers=[(f"lt-w{k}-courier{i}", "") for i in range(n_couriers)],
                labs=[(f"lt-w{k}-lab{i}", "") for i in range(n_labs)],
                labsys=[(f"lt-w{k}-labsys{i}", "") for i in range(n_labsys)],
                box_base=box_root + k * 1_000_000,
            )
        )
    site_rows = [
        {"id": s.id, "name": s.name, "street": s.street, "community": s.community, "grid": s.grid}
        for s in d.sites
    ]
    planned = sum(len(q) for q in by_site.values())
    return Plan(
        round_id=round_id,
        residents=residents,
        planned=planned,
        sites=site_rows,
        risk=risk,
        workers=plans,
        absent=absent,
    )
