"""Rounds' risk flags follow the register: set when a round opens and whenever the
register changes, with no other call; a manual flag needs a reason and stays until
cleared."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sampling.binding import keys
from sampling.binding.risk import RiskDerivation
from sampling.privacy import ResidentHasher
from sampling.store.client import connect
from tests.conftest import SECRET, Api, resident, tube

if TYPE_CHECKING:
    import redis

    from sampling.store.embedded import EmbeddedServer

HEAD = "resident,name,street,community,grid,building,unit,household,labels,colour\n"


def register(**people: tuple[str, str]) -> bytes:
    """``r<n>=(labels, colour)``: one household each in community C1."""
    return (
        HEAD
        + "".join(
            f"{resident(int(k[1:]))},居民{k},花园路,C1,G1,1,1,{k},{labels},{colour}\n"
            for k, (labels, colour) in people.items()
        )
    ).encode()


def upload(api: Api, body: bytes) -> None:
    done = api.client.post("/v1/register/", content=body, headers=api.h(api.admin))
    assert done.status_code == 200 and done.json()["rows_stored"], done.text


def refused(api: Api, tok: str, tube_code: str, n: int, round_id: str = "r1") -> bool:
    resp = api.scan(tok, tube_code, resident(n), round_id=round_id)
    if resp.status_code == 409 and resp.json()["code"] == "risk_needs_single_tube":
        return True
    assert resp.status_code == 200, resp.text
    return False


def test_a_register_import_refuses_a_resident_from_a_pooled_tube(api: Api, r: redis.Redis) -> None:
    api.round("r1")
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    upload(api, register(r1=("", ""), r2=("", "")))
    assert not refused(api, tok, tube(1), 1)
    # The register now says resident 2 is red and 3 in home isolation: nothing else is called.
    upload(api, register(r1=("", ""), r2=("", "red"), r3=("居家隔离", ""), r4=("", "")))
    assert refused(api, tok, tube(1), 2) and refused(api, tok, tube(1), 3)
    assert not refused(api, tok, tube(1), 4)
    assert api.open(tok, tube(2), capacity=1).status_code == 201
    assert not refused(api, tok, tube(2), 2)  # alone, in a single tube
    # Green again in the register: pooled again.
    upload(api, register(r1=("", ""), r2=("", "red"), r3=("", ""), r4=("", "")))
    assert not refused(api, tok, tube(1), 3)
    changes = [
        (f[b"flags"].decode(), f[b"src"].decode())
        for _, f in r.xrange(keys.journal("r1"))
        if f[b"k"] == b"risk"
    ]
    # One import's changes come in the order of the risk buckets, not of the file.
    assert sorted(changes[:2]) == [("I", "register"), ("R", "register")], changes
    assert changes[2:] == [("", "register")], changes


def test_a_manual_flag_needs_a_reason_and_survives_the_register(api: Api) -> None:
    api.round("r1")
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    flag = {"residents": [{"resident": resident(5), "flags": "I"}]}
    bare = api.client.put("/v1/rounds/r1/risk", json=flag, headers=api.h(api.admin))
    assert bare.status_code == 400 and bare.json()["code"] == "reason_required", bare.text
    assert not refused(api, tok, tube(1), 9)  # nothing was flagged by the refusal
    flag["reason"] = "quarantine order by phone, not yet in the register"  # type: ignore[assignment]
    assert api.client.put("/v1/rounds/r1/risk", json=flag, headers=api.h(api.admin)).is_success
    # The register says resident 5 is green, 6 yellow: 5 stays flagged by hand.
    upload(api, register(r5=("", ""), r6=("", "yellow")))
    assert refused(api, tok, tube(1), 5) and refused(api, tok, tube(1), 6)
    clear = {"residents": [{"resident": resident(5), "flags": ""}]}
    assert api.client.put("/v1/rounds/r1/risk", json=clear, headers=api.h(api.admin)).is_success
    assert not refused(api, tok, tube(1), 5)
    # A round opened after the import starts with the register's flags.
    api.round("r2")
    assert api.open(tok, tube(3), round_id="r2").status_code == 201
    assert refused(api, tok, tube(3), 6, round_id="r2")


def test_an_older_register_version_changes_nothing(api: Api, server: EmbeddedServer) -> None:
    api.round("r1")
    rhash = ResidentHasher(bytes.fromhex(SECRET)).digest(resident(7))

    async def go() -> list[str]:
        client = connect(server.url)
        try:
            derive = RiskDerivation(client)
            done = [await derive.derive("r1", [(rhash, "R")], version=5, by="t")]
            done.append(await derive.derive("r1", [], version=4, by="t"))
            done.append(await derive.derive("r1", [(rhash, "R")], version=5, by="t"))
            return [f"{d.status}:{d.changed}" for d in done]
        finally:
            await client.aclose()

    assert asyncio.run(go()) == ["applied:1", "stale:0", "applied:0"]
