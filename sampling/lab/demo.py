"""The lab's demo step: register, results through the API, archive, reconcile, door lists.

Run by the demo runner after sampling and boxing; ``ctx`` carries the HTTP client
of the running API, the admin token, the round, the data and output directories,
the register file the runner wrote, the settings, ``archive()`` and ``log()``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread

from sampling.lab import doors, reconcile, report, sources
from sampling.lab.register import import_register
from sampling.privacy import ResidentHasher

LAB = "L1"


async def _post(ctx: Any, path: str, token: str, body: Any) -> Any:
    resp = await ctx.http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    if resp.status_code >= 300:
        raise RuntimeError(f"{path}: {resp.status_code} {resp.text}")
    return resp.json()


def _results(tubes: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """Results for all but the last tube (left awaiting): two positive pools, two invalid."""
    now = datetime.now(UTC)
    picked = tubes[:-1] if len(tubes) > 1 else tubes
    special = rng.sample(picked, min(4, len(picked)))
    rows = []
    for t in picked:
        row: dict[str, Any] = {"tube": t, "outcome": "negative",
                               "tested_at": (now + timedelta(hours=3)).isoformat()}  # fmt: skip
        if t in special[:2]:
            ct = round(rng.uniform(20, 34), 1)
            row.update(outcome="positive", ct_orf1ab=ct, ct_n=round(ct + 1.3, 1))
        elif t in special[2:]:
            row["outcome"] = "invalid"
        rows.append(row)
    return rows


async def run(ctx: Any) -> dict[str, Any]:
    rng = random.Random(11)
    settings = ctx.settings
    rep, _ = await anyio.to_thread.run_sync(
        lambda: import_register(
            ctx.register_path, ResidentHasher(settings.secret()), settings.data_dir
        )
    )
    ctx.log(
        f"register: {rep.rows_read} rows read = {rep.rows_stored} stored + "
        f"{rep.rows_refused} refused"
    )
    # What intake found missing or broken never reaches a lab's machine.
    await ctx.archive()
    lost = await anyio.to_thread.run_sync(lambda: _lost_tubes(settings.data_dir, ctx.round_id))
    tubes = sorted({t for ts in ctx.closed_tubes.values() for t in ts} - lost)
    rows = _results(tubes, rng)
    # Each lab reports the tubes it holds, from its own device (a tube in no box:
    # the district admin's import).
    held_by = await anyio.to_thread.run_sync(lambda: _labs_of(settings.data_dir, ctx.round_id))
    tokens: dict[str, str] = {}
    for name in sorted(set(held_by.values())) or [LAB]:
        spec = {"id": f"lab-demo-{name}"[:40], "role": "lab", "lab": name}
        tokens[name] = (await _post(ctx, "/v1/devices", ctx.admin, spec))["token"]
    by_lab: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_lab.setdefault(tokens.get(held_by.get(row["tube"], ""), ctx.admin), []).append(row)
    path = f"/v1/rounds/{ctx.round_id}/results"
    stored = {"stored": 0, "duplicate": 0, "held": 0, "orphan": 0, "refused": 0, "rows_in": 0}
    dry = dict(stored)
    for token, mine in by_lab.items():
        got = await _post(ctx, path, token, {"results": mine, "dry_run": True})
        for k in dry:
            dry[k] += got[k]
        for start in range(0, len(mine), 500):
            got = await _post(ctx, path, token, {"results": mine[start : start + 500]})
            for k in stored:
                stored[k] += got[k]
    lab = tokens.get(held_by.get(rows[0]["tube"], ""), ctx.admin) if rows else ctx.admin
    # The field's mistakes: a result sent twice, a second result that disagrees,
    # a result for a tube no one bound.
    same = [r for r in rows[1:] if held_by.get(r["tube"]) == held_by.get(rows[0]["tube"])]
    second = same[0] if same else rows[0]
    extra = [rows[0], {**second, "outcome": "invalid"}, {**rows[0], "tube": "T999999999990"}]
    extra[2]["tube"] = _unbound_tube(tubes)
    mistakes = await _post(ctx, path, lab, {"results": extra})
    ctx.log(
        f"results: dry run said {dry['stored']} new; stored {stored['stored']}, then a repeat "
        f"({mistakes['duplicate']} duplicate), a conflict ({mistakes['held']} held), "
        f"an unbound tube ({mistakes['orphan']} orphan)"
    )
    await ctx.archive()
    out_dir = ctx.out_dir / "lab"
    got = await anyio.to_thread.run_sync(
        lambda: report.collect(settings.data_dir, ctx.round_id, report.NAMES)
    )
    summary = report.summary(ctx.round_id, got)
    await anyio.to_thread.run_sync(lambda: _write(got, out_dir, ctx.round_id))
    grid_check = await _grid_token_check(ctx, got)
    states = summary["states"]
    ctx.log(
        f"reconciled: {summary['bound']} bound = "
        + " + ".join(f"{v} {k}" for k, v in states.items())
        + f"; {summary['resample_orders']} re-sample orders; door lists in {out_dir}"
    )
    return {
        "register_rows": rep.rows_read,
        "register_stored": rep.rows_stored,
        "results_dry_run": {k: dry[k] for k in ("stored", "duplicate", "held", "orphan")},
        "results": stored,
        "results_mistakes": {k: mistakes[k] for k in ("duplicate", "held", "orphan")},
        "states": states,
        "states_add_up": sum(states.values()) == summary["bound"],
        "resample_orders": summary["resample_orders"],
        "coverage": summary.get("coverage"),
        "coverage_by_community": summary["coverage_by_community"],
        "door_list_sizes": summary["door_list_sizes"],
        "grid_token_check": grid_check,
        "report_dir": str(out_dir),
    }


def _lost_tubes(data_dir: Any, round_id: str) -> set[str]:
    rnd = sources.scan_round(data_dir, round_id)
    return set(reconcile.lost_tubes(rnd.intake).collect()["tube"].to_list())


def _labs_of(data_dir: Any, round_id: str) -> dict[str, str]:
    """Tube -> the lab its box was addressed to."""
    rnd = sources.scan_round(data_dir, round_id)
    frame = rnd.box_tubes.join(rnd.boxes.select("box", "lab"), on="box").collect()
    return dict(zip(frame["tube"].to_list(), frame["lab"].to_list(), strict=True))


def _unbound_tube(tubes: list[str]) -> str:
    from sampling import codes

    used = {codes.tube_number(t) for t in tubes}
    n = 99_999_999_000
    while n in used:
        n += 1
    return codes.make_tube(n)


def _write(got: dict[str, Any], out_dir: Any, round_id: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in got.items():
        if name != "states":
            frame.write_csv(out_dir / f"{name}.csv", include_bom=True)
    door_dir = out_dir / "doors"
    door_dir.mkdir(exist_ok=True)
    all_doors = got["doors"]
    for (grid,), frame in all_doors.partition_by("grid", as_dict=True).items():
        title = f"敲门清单 knock-on-door list: {grid}, round {round_id}"
        doors.write_csv(frame, door_dir / f"{grid}.csv")
        doors.write_xlsx(frame, door_dir / f"{grid}.xlsx")
        doors.write_pdf(frame, door_dir / f"{grid}.pdf", title=title)


async def _grid_token_check(ctx: Any, got: dict[str, Any]) -> dict[str, int]:
    """A grid team's token reads its own grid's list, and is refused another's."""
    grids = sorted(set(got["door_sizes"]["grid"].to_list()))
    if not grids:
        return {}
    own = grids[0]
    other = grids[-1] if len(grids) > 1 else own + "-other"
    made = await _post(ctx, "/v1/devices", ctx.admin, {"id": "grid-demo", "role": "grid",
                                                       "grid": own})  # fmt: skip
    h = {"Authorization": f"Bearer {made['token']}"}
    base = f"/v1/rounds/{ctx.round_id}/doors"
    mine = await ctx.http.get(f"{base}/{own}", headers=h)
    theirs = await ctx.http.get(f"{base}/{other}", headers=h)
    return {"own_grid_status": mine.status_code, "other_grid_status": theirs.status_code}
