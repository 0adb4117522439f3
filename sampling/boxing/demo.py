"""The demo's boxing step: box every closed tube, seal, hand over, carry, receive, take in.

Driven through the HTTP API only, as the field's devices would: one sealer per
site, two couriers, two labs. Along the way it shows the refusals that matter:
a box sealed with a miscount is refused and then sealed with the right count,
a box scanned at the wrong lab is refused, and at intake one tube is missing and
one is damaged, which the discrepancy records show with the residents affected.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from sampling import codes

if TYPE_CHECKING:
    import httpx

#: Tubes per box in the demo (the server's capacity is larger; small boxes make
#: more boxes to show).
BOX_TUBES = 25
LABS = ("LAB-A", "LAB-B")


@dataclass
class _Device:
    http: httpx.AsyncClient
    id: str
    token: str
    seq: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, path: str, body: dict[str, Any], *, expect_ok: bool = True) -> Any:
        self.seq += 1
        payload = {"op": f"{self.id}-{self.seq}", "seq": self.seq, **body}
        resp = await self.http.post(
            path, json=payload, headers={"Authorization": f"Bearer {self.token}"}
        )
        if resp.status_code >= 400:
            problem = resp.json()
            if expect_ok:
                raise RuntimeError(f"{path}: {problem.get('code')}: {problem.get('detail')}")
            self.refused.append(problem)
            return problem
        return resp.json()

    async def get(self, path: str) -> Any:
        resp = await self.http.get(path, headers={"Authorization": f"Bearer {self.token}"})
        resp.raise_for_status()
        return resp


async def _device(ctx: Any, dev_id: str, role: str, site: str = "", lab: str = "") -> _Device:
    resp = await ctx.http.post(
        "/v1/devices",
        json={"id": dev_id, "role": role, "site": site, "lab": lab},
        headers={"Authorization": f"Bearer {ctx.admin}"},
    )
    resp.raise_for_status()
    return _Device(ctx.http, dev_id, resp.json()["token"])


def _box_codes(round_id: str) -> itertools.count[int]:
    # Box barcodes are used once ever; start each round's demo boxes somewhere of its own.
    return itertools.count(zlib.crc32(round_id.encode()) % 900_000 * 1_000 + 1)


async def _open_box(sealer: _Device, base: str, numbers: itertools.count[int]) -> str:
    while True:
        box = codes.make_box(next(numbers))
        got = await sealer.send(f"{base}/boxes", {"box": box}, expect_ok=False)
        if got.get("status") == "ok":
            return box
        if got.get("code") != "box_used":
            raise RuntimeError(f"opening a box: {got.get('code')}: {got.get('detail')}")
        sealer.refused.pop()


async def run(ctx: Any) -> dict[str, Any]:
    base = f"/v1/rounds/{ctx.round_id}"
    tag = ctx.round_id[:12]
    manifests = ctx.out_dir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    couriers = [await _device(ctx, f"{tag}-courier-{i}", "courier") for i in (1, 2)]
    labs = {lab: await _device(ctx, f"{tag}-{lab.lower()}", "lab", lab=lab) for lab in LABS}
    numbers = _box_codes(ctx.round_id)
    sealed: list[tuple[str, str, list[str]]] = []  # box, lab, tubes
    miscounts = wrong_lab = 0

    for s, site in enumerate(ctx.sites):
        tubes = list(ctx.closed_tubes.get(site, []))
        if not tubes:
            continue
        sealer = await _device(ctx, f"{tag}-sealer-{site}"[:40], "sealer", site=site)
        for start in range(0, len(tubes), BOX_TUBES):
            chunk = tubes[start : start + BOX_TUBES]
            box = await _open_box(sealer, base, numbers)
            samples, inside = 0, []
            for t in chunk:
                got = await sealer.send(f"{base}/boxes/{box}/tubes", {"tube": t}, expect_ok=False)
                if got.get("status") != "ok":
                    ctx.log(f"tube {t} not boxed: {got.get('code')}: {got.get('detail')}")
                    continue
                samples = got["samples"]
                inside.append(t)
            if not inside:
                continue
            chunk = inside
            lab = LABS[len(sealed) % len(LABS)]
            if not sealed:
                # The sealer miscounts the first box by one sample: refused, recounted.
                got = await sealer.send(
                    f"{base}/boxes/{box}/seal",
                    {"tubes": len(chunk), "samples": samples - 1, "lab": lab},
                    expect_ok=False,
                )
                miscounts += 1
                ctx.log(f"seal refused: {got['code']}: {got['detail']}")
            await sealer.send(
                f"{base}/boxes/{box}/seal", {"tubes": len(chunk), "samples": samples, "lab": lab}
            )
            courier = couriers[s % len(couriers)]
            await sealer.send(f"{base}/boxes/{box}/handover", {"courier": courier.id})
            await courier.send(f"{base}/boxes/{box}/pickup", {"place": f"site {site}"})
            manifest = (await sealer.get(f"{base}/boxes/{box}/manifest")).json()
            (manifests / f"{box}.json").write_bytes(
                msgspec.json.format(msgspec.json.encode(manifest), indent=2)
            )
            pdf = await sealer.get(f"{base}/boxes/{box}/manifest.pdf")
            (manifests / f"{box}.pdf").write_bytes(pdf.content)
            sealed.append((box, lab, chunk))
        ctx.log(f"site {site}: {len(tubes)} tubes sealed into boxes")

    received = discrepancies = affected = 0
    for i, (box, lab, chunk) in enumerate(sealed):
        desk = labs[lab]
        if i == 0:
            other = labs[next(x for x in LABS if x != lab)]
            got = await other.send(f"{base}/boxes/{box}/receive", {}, expect_ok=False)
            wrong_lab += 1
            ctx.log(f"wrong lab refused: {got['code']}: {got['detail']}")
        await desk.send(f"{base}/boxes/{box}/receive", {})
        received += 1
        for j, t in enumerate(chunk):
            last = len(chunk) - 1
            if i == 0 and j == last and last > 0:
                continue  # lost on the way: missing at intake
            condition = "leaking" if i == 0 and j == last - 1 else "ok"
            await desk.send(f"{base}/boxes/{box}/intake", {"tube": t, "condition": condition})
        await desk.send(f"{base}/boxes/{box}/intake/close", {})
        record = (await desk.get(f"{base}/boxes/{box}/discrepancies")).json()
        found = len(record["missing"]) + len(record["extra"]) + len(record["damaged"])
        if found:
            discrepancies += found
            affected += record["residents_affected"]
            ctx.log(
                f"box {box} at {lab}: {len(record['missing'])} missing, "
                f"{len(record['extra'])} extra, {len(record['damaged'])} damaged "
                f"({record['residents_affected']} residents affected)"
            )
    ctx.log(f"{len(sealed)} boxes sealed, {received} received, {discrepancies} discrepancies")
    return {
        "boxes": len(sealed),
        "sealed": len(sealed),
        "received": received,
        "discrepancies": discrepancies,
        "residents_affected": affected,
        "seal_refused": miscounts,
        "wrong_lab_refused": wrong_lab,
        "manifests": str(manifests),
    }
