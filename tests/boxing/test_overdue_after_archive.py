"""A closed tube stays on the overdue list after the archiver trims the journal."""

from __future__ import annotations

from sampling import archive
from tests.conftest import Api, resident, tube


def test_unboxed_tube_still_overdue_after_archive(api: Api) -> None:
    api.round()
    api.site("S1")
    scanner = api.device("hh", site="S1")
    assert api.open(scanner, tube(1), capacity=5).status_code == 201
    assert api.scan(scanner, tube(1), resident(1)).status_code == 200
    seq = api.next_seq(scanner)
    closed = api.post(f"/v1/rounds/r1/tubes/{tube(1)}/close", scanner, {"op": "c", "seq": seq})
    assert closed.status_code == 200
    services = api.client.app.state.services

    async def drain() -> archive.ArchiveReport:
        return await archive.drain(services.redis, "r1", services.settings.data_dir)

    report = api.client.blocking_portal.call(drain)  # type: ignore[union-attr]
    assert report.entries >= 3
    assert report.journal_left == 0
    late = api.get("/v1/rounds/r1/overdue?unboxed=0", api.admin)
    assert late.status_code == 200, late.text
    assert [x["code"] for x in late.json()["unboxed"]] == [tube(1)]
