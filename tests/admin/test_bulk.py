"""Bulk registration: sites and devices in one call each, all or nothing, journaled
once, and safe to send again."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sampling import adminlog
from sampling.adminlog import Registry
from sampling.auth import keys as auth_keys
from sampling.binding import keys
from sampling.store.client import connect
from tests.conftest import Api, tube

if TYPE_CHECKING:
    import redis

    from sampling.store.embedded import EmbeddedServer


def _site(i: int, **kw: str) -> dict[str, str]:
    return {
        "id": f"S{i:03d}",
        "name": f"采样点{i}",
        "street": "花园路街道",
        "community": "花园社区1",
        "grid": f"G{i:03d}",
    } | kw


def _admin_kinds(r: redis.Redis) -> list[str]:
    return [f[b"k"].decode() for _, f in r.xrange(adminlog.ADMIN)][1:]  # after the bootstrap


def _last_admin(r: redis.Redis) -> dict[str, str]:
    _, fields = r.xrevrange(adminlog.ADMIN, count=1)[0]
    return {k.decode(): v.decode() for k, v in fields.items()}


def test_sites_in_bulk_once_and_again(api: Api, r: redis.Redis) -> None:
    body = {"sites": [_site(i) for i in range(1, 4)]}
    made = api.post("/v1/sites/bulk", api.admin, body)
    assert made.status_code == 200, made.text
    assert made.json() == {"created": 3, "unchanged": 0}
    listed = api.get("/v1/sites", api.admin).json()
    assert [s["id"] for s in listed] == ["S001", "S002", "S003"]
    assert listed[1]["name"] == "采样点2"
    assert _admin_kinds(r) == ["site_bulk"]
    entry = _last_admin(r)
    assert (entry["d"], entry["n"], entry["created"]) == ("admin0", "3", "3")
    assert entry["ids"] == "S001,S002,S003"
    # The same call again (its answer was lost): nothing changes, nothing is journaled.
    again = api.post("/v1/sites/bulk", api.admin, body)
    assert again.status_code == 200, again.text
    assert again.json() == {"created": 0, "unchanged": 3}
    assert _admin_kinds(r) == ["site_bulk"]
    # A call that adds to it registers only the new one.
    more = api.post("/v1/sites/bulk", api.admin, {"sites": [_site(3), _site(4)]})
    assert more.json() == {"created": 1, "unchanged": 1}
    assert _last_admin(r)["ids"] == "S004"


def test_a_bad_site_row_writes_nothing(api: Api, r: redis.Redis) -> None:
    api.site("S002", grid="G9")  # registered before, with other details
    before = r.xlen(adminlog.ADMIN)
    rows = [_site(1), _site(2), _site(3)]
    clash = api.post("/v1/sites/bulk", api.admin, {"sites": rows})
    assert clash.status_code == 409, clash.text
    assert clash.json()["index"] == 1 and "sites[1]" in clash.json()["detail"]
    assert "S002" in clash.json()["detail"]
    twice = api.post("/v1/sites/bulk", api.admin, {"sites": [_site(1), _site(3), _site(1)]})
    assert twice.status_code == 400, twice.text
    assert "sites[2]" in twice.json()["detail"] and "sites[0]" in twice.json()["detail"]
    schema = api.post("/v1/sites/bulk", api.admin, {"sites": [_site(1), _site(3, id="bad id")]})
    assert schema.status_code == 400
    assert "sites[1]" in schema.text
    unknown = api.post("/v1/sites/bulk", api.admin, {"sites": [_site(1) | {"x": "1"}]})
    assert unknown.status_code == 400
    assert api.post("/v1/sites/bulk", api.admin, {"sites": []}).status_code == 400
    assert sorted(r.hkeys(keys.SITES)) == [b"S002"]
    assert r.xlen(adminlog.ADMIN) == before


def _dev(i: int, role: str = "scanner", **kw: Any) -> dict[str, Any]:
    return {"id": f"hh-{i}", "role": role, **kw}


def test_devices_in_bulk_get_tokens_that_a_retry_gets_again(api: Api, r: redis.Redis) -> None:
    api.round("r1")
    api.site("S1")
    body = {
        "op": "setup-1",
        "devices": [
            _dev(1, site="S1"),
            _dev(2, site="S1", expires_in=3600),
            _dev(3, "lab", lab="L1", supervisor=True),
            _dev(4, "courier"),
        ],
    }
    made = api.post("/v1/devices/bulk", api.admin, body)
    assert made.status_code == 200, made.text
    out = made.json()
    assert (out["created"], out["unchanged"]) == (4, 0)
    tokens = [d["token"] for d in out["devices"]]
    assert [d["device"]["id"] for d in out["devices"]] == ["hh-1", "hh-2", "hh-3", "hh-4"]
    assert out["devices"][2]["device"]["supervisor"] is True
    assert out["devices"][1]["device"]["expires_at"] > out["devices"][1]["device"]["created_at"]
    # The tokens work, with the roles given: a scanner opens a tube.
    who = api.get("/v1/whoami", tokens[2]).json()
    assert (who["id"], who["role"], who["lab"]) == ("hh-3", "lab", "L1")
    assert api.open(tokens[0], tube(1)).status_code == 201
    # Only digests are stored.
    assert not any(t.encode() in v for t in tokens for v in r.hvals(auth_keys.DEVICES))
    assert _admin_kinds(r)[-1] == "device_bulk"
    entry = _last_admin(r)
    assert (entry["created"], entry["roles"]) == ("4", "courier:1,lab:1,scanner:2")
    assert entry["ids"] == "hh-1,hh-2,hh-3,hh-4"
    assert "setup-1" not in str(r.xrange(adminlog.ADMIN))  # the op is never stored
    journaled = r.xlen(adminlog.ADMIN)
    # The answer was lost; the same call again gives the same tokens, writes nothing.
    records = r.hgetall(auth_keys.DEVICES)
    again = api.post("/v1/devices/bulk", api.admin, body)
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 4)
    assert [d["token"] for d in again.json()["devices"]] == tokens
    assert r.hgetall(auth_keys.DEVICES) == records
    assert r.xlen(adminlog.ADMIN) == journaled
    # The same rows under another op would be other tokens: refused, not re-keyed.
    other = api.post("/v1/devices/bulk", api.admin, body | {"op": "setup-2"})
    assert other.status_code == 409, other.text
    assert other.json()["index"] == 0
    assert r.hgetall(auth_keys.DEVICES) == records
    # A revoked device is not brought back by a retry.
    assert api.post("/v1/devices/hh-4/revoke", api.admin, {}).status_code == 200
    revoked = api.post("/v1/devices/bulk", api.admin, body)
    assert revoked.status_code == 409 and "revoked" in revoked.json()["detail"]
    assert revoked.json()["index"] == 3


def test_a_bad_device_row_writes_nothing(api: Api, r: redis.Redis) -> None:
    api.device("hh-3", site="S1")  # registered singly before
    before = (r.hkeys(auth_keys.DEVICES), r.xlen(adminlog.ADMIN))
    rows = [_dev(1), _dev(2), _dev(3), _dev(4)]
    clash = api.post("/v1/devices/bulk", api.admin, {"op": "a", "devices": rows})
    assert clash.status_code == 409, clash.text
    assert clash.json()["index"] == 2 and "devices[2]" in clash.json()["detail"]
    supervisor = [_dev(1), _dev(2, supervisor=True)]
    bad = api.post("/v1/devices/bulk", api.admin, {"op": "a", "devices": supervisor})
    assert bad.status_code == 400, bad.text
    assert bad.json()["index"] == 1 and "supervisor" in bad.json()["detail"]
    named = [_dev(1), {**_dev(2), "communities": ["C1"]}]  # a scanner is no registrar
    bad = api.post("/v1/devices/bulk", api.admin, {"op": "a", "devices": named})
    assert bad.status_code == 400, bad.text
    assert bad.json()["index"] == 1 and "registrar" in bad.json()["detail"]
    twice = api.post("/v1/devices/bulk", api.admin, {"op": "a", "devices": [_dev(5), _dev(5)]})
    assert twice.status_code == 400 and "devices[1]" in twice.json()["detail"]
    role = api.post("/v1/devices/bulk", api.admin, {"op": "a", "devices": [_dev(6), _dev(7, "x")]})
    assert role.status_code == 400 and "devices[1].role" in role.text
    no_op = api.post("/v1/devices/bulk", api.admin, {"devices": [_dev(8)]})
    assert no_op.status_code == 400 and "op" in no_op.text
    many = {"op": "a", "devices": [_dev(i) for i in range(5_001)]}
    assert api.post("/v1/devices/bulk", api.admin, many).status_code == 400
    assert (r.hkeys(auth_keys.DEVICES), r.xlen(adminlog.ADMIN)) == before


def test_only_an_admin_registers_in_bulk(api: Api, r: redis.Redis) -> None:
    api.site("S1")
    viewer = api.device("v1", "viewer")
    scanner = api.device("hh-0", site="S1")
    devices = {"op": "a", "devices": [_dev(1)]}
    sites = {"sites": [_site(1)]}
    for token in (viewer, scanner):
        assert api.post("/v1/devices/bulk", token, devices).status_code == 403
        assert api.post("/v1/sites/bulk", token, sites).status_code == 403
    assert api.client.post("/v1/devices/bulk", json=devices).status_code == 401
    assert api.client.post("/v1/sites/bulk", json=sites).status_code == 401
    assert not r.hexists(auth_keys.DEVICES, "hh-1")
    assert not r.hexists(keys.SITES, "S001")


def test_the_script_writes_all_rows_or_none(r: redis.Redis, server: EmbeddedServer) -> None:
    """A record that changed since the call read it (another call, between the read and
    the script) refuses the whole call, so the call reads and decides again."""
    r.hset(keys.SITES, "b", b"theirs")

    async def write(rows: list[tuple[str, bytes | None, bytes | None]]) -> int:
        client = connect(server.url)
        try:
            journal = adminlog.entry("site_bulk", "t", n=len(rows))
            return await Registry(client).write_many(keys.SITES, rows, journal)
        finally:
            await client.aclose()

    stale = [("a", None, b"A"), ("b", None, b"B"), ("c", None, b"C")]
    assert asyncio.run(write(stale)) == 2
    assert r.hgetall(keys.SITES) == {b"b": b"theirs"}
    assert r.xlen(adminlog.ADMIN) == 0
    kept = [("a", None, b"A"), ("b", b"theirs", None), ("c", None, b"C")]
    assert asyncio.run(write(kept)) == 0
    assert r.hgetall(keys.SITES) == {b"a": b"A", b"b": b"theirs", b"c": b"C"}
    assert r.xlen(adminlog.ADMIN) == 1
