"""Admin changes are journaled atomically, round creation is one step in the round's
slot, and a revocation reaches a round created at the same moment."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from sampling import adminlog
from sampling.auth import keys as auth_keys
from sampling.auth.devices import Devices, RevokedFanout
from sampling.auth.models import DeviceIn
from sampling.binding import keys
from sampling.binding.models import RoundIn
from sampling.binding.rounds import Rounds
from sampling.binding.scripts import RoundCreate
from sampling.errors import Conflict
from sampling.store.client import connect
from sampling.store.scripts import Runner
from tests.conftest import Api, resident, tube

if TYPE_CHECKING:
    from pathlib import Path

    import redis

    from sampling.settings import Settings
    from sampling.store.embedded import EmbeddedServer


def _round_journal(r: redis.Redis, round_id: str) -> list[dict[str, bytes]]:
    return [{k.decode(): v for k, v in f.items()} for _, f in r.xrange(keys.journal(round_id))]


def test_every_admin_change_is_journaled_with_who(
    api: Api, r: redis.Redis, settings: Settings
) -> None:
    from sampling import archive

    api.round("r1")
    api.site("S1")
    api.device("d1", site="S1")
    flags = {"residents": [{"resident": resident(1), "flags": "Y"}], "reason": "typo fixed"}
    resp = api.client.put("/v1/rounds/r1/risk", json=flags, headers=api.h(api.admin))
    assert resp.status_code == 200, resp.text
    assert api.post("/v1/devices/d1/revoke", api.admin, {}).status_code == 200
    assert api.post("/v1/rounds/r1/close", api.admin, {}).status_code == 200

    async def read() -> list[adminlog.AdminEntry]:
        client = connect(f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}/0")
        try:
            return await adminlog.entries(client)
        finally:
            await client.aclose()

    found = asyncio.run(read())
    assert (found[0].kind, found[0].fields["device"]) == ("device_create", "admin0")  # bootstrap
    found = found[1:]
    got = [(e.kind, e.by) for e in found]
    assert got == [
        ("round_create", "admin0"),
        ("site_create", "admin0"),
        ("device_create", "admin0"),
        ("risk", "admin0"),
        ("device_revoke", "admin0"),
        ("round_close", "admin0"),
    ]
    risk = found[3].fields
    assert (risk["round"], risk["n"], risk["reason"]) == ("r1", "1", "typo fixed")
    assert found[2].fields["site"] == "S1" and found[2].fields["role"] == "scanner"
    # The round's own journal tells its part, the resident by keyed hash only; the
    # close archived it (for the closing report), so it is read from the archive.
    assert _round_journal(r, "r1") == []
    journal = archive.journal(settings.data_dir, "r1").collect()
    assert journal["kind"].to_list() == ["round_create", "risk", "round_close"]
    risk_entry = journal.row(1, named=True)
    assert risk_entry["flags"] == "Y" and len(risk_entry["rhash"]) == 16  # 8 bytes, as hex
    assert resident(1) not in "".join(str(v) for v in risk_entry.values())


def test_round_created_by_its_one_step_is_whole(
    api: Api, r: redis.Redis, server: EmbeddedServer
) -> None:
    """A crash after the round's atomic step leaves a round binding accepts, that
    ``create`` again lists (and refuses as existing), never a half round."""

    async def first_step_only() -> None:
        import msgspec

        from sampling.binding.models import Round

        client = connect(server.url)
        try:
            record = msgspec.msgpack.encode(
                Round(id="r9", name="r9", pool=10, state="open", created_at=1.0)
            )
            created = await Runner(client)(
                RoundCreate(
                    round_id="r9",
                    record=record,
                    pool=10,
                    by="cli:test",
                    round_name="r9",
                    revoked=["gone-device"],
                )
            )
            assert created == 1
            with pytest.raises(Conflict):
                await Rounds(client).create(RoundIn(id="r9", name="r9"), by="cli:test")
        finally:
            await client.aclose()

    asyncio.run(first_step_only())
    assert r.sismember(keys.revoked("r9"), "gone-device")
    assert r.hexists(keys.ROUNDS, "r9")  # listed by the retry
    api.site("S1")
    tok = api.device("d1", site="S1")
    opened = api.post("/v1/rounds/r9/tubes", tok, {"op": "o1", "seq": 1, "tube": tube(1)})
    assert opened.status_code == 201, opened.text
    assert api.get("/v1/rounds/r9", api.admin).json()["state"] == "open"


def test_a_revocation_reaches_rounds_created_at_the_same_moment(
    r: redis.Redis, server: EmbeddedServer
) -> None:
    n = 30

    async def race() -> None:
        client = connect(server.url)
        try:
            devices = Devices(client, RevokedFanout(client))
            rounds = Rounds(client)
            for i in range(n):
                await devices.create(DeviceIn(id=f"d{i}", role="scanner"))
            # Rounds that already exist make each fan-out long: a round created
            # while one runs is where a revocation used to be lost.
            for i in range(n):
                await rounds.create(RoundIn(id=f"old{i}", name="x"))
            steps = []
            for i in range(n):
                steps.append(devices.revoke(f"d{i}"))
                steps.append(rounds.create(RoundIn(id=f"r{i}", name="x")))
            await asyncio.gather(*steps)
        finally:
            await client.aclose()

    asyncio.run(race())
    everyone = {f"d{i}".encode() for i in range(n)}
    assert r.smembers(auth_keys.REVOKED) == everyone
    ids = [f"{p}{i}" for p in ("old", "r") for i in range(n)]
    missed = {
        rid: sorted(everyone - r.smembers(keys.revoked(rid)))
        for rid in ids
        if everyone - r.smembers(keys.revoked(rid))
    }
    assert not missed, f"revocations a round never saw: {missed}"


def test_the_archiver_takes_admin_entries_in_its_stride(
    api: Api, r: redis.Redis, server: EmbeddedServer, tmp_path: Path
) -> None:
    from sampling import archive

    api.round("r1")
    api.site("S1")
    tok = api.device("d1", site="S1")
    flags = {"residents": [{"resident": resident(2), "flags": "RI"}], "reason": "test"}
    assert api.client.put("/v1/rounds/r1/risk", json=flags, headers=api.h(api.admin)).is_success
    assert api.post("/v1/rounds/r1/tubes", tok, {"op": "o1", "seq": 1, "tube": tube(1)}).is_success
    assert api.post("/v1/rounds/r1/close", api.admin, {}).is_success

    async def drain() -> archive.ArchiveReport:
        client = connect(server.url)
        try:
            return await archive.drain(client, "r1", tmp_path)
        finally:
            await client.aclose()

    report = asyncio.run(drain())
    # The close ran an archive pass of its own (for its report): nothing is left.
    assert (report.entries, report.journal_left) == (0, 0)
    files = archive.materialize(tmp_path, "r1")
    assert "tubes.parquet" in files and "bindings.parquet" in files
    import polars as pl

    tubes = pl.read_parquet(tmp_path / "archive" / "r1" / "tubes.parquet")
    assert tubes["tube"].to_list() == [tube(1)]
    kinds = archive.journal(tmp_path, "r1").collect()["kind"].to_list()
    assert kinds == ["round_create", "risk", "open", "round_close"]
