"""Authorization, generated from the app itself: every role against every endpoint, and
against other sites', labs' and grids' objects. Refusals leak nothing; tokens are stored
hashed, expire, and a revoked token stops working at once, in every worker."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar import Litestar
from litestar.testing import TestClient

from sampling import codes
from sampling.api.app import create_app
from sampling.auth.devices import Devices
from sampling.auth.models import ROLES, DeviceIn
from sampling.settings import Settings
from sampling.store.embedded import EmbeddedServer
from tests.binding import snapshot
from tests.conftest import SECRET, Api, resident, tube

#: Routes anyone may call: liveness, readiness, the API's own documentation, the
#: landing page, signing in and out, the language switch and the pages' static files;
#: the pairing exchange (a handheld has no token before it; rate limited), the
#: handheld's pairing form and its service worker script.
PUBLIC = re.compile(
    r"^/(healthz|readyz|docs(/.*)?|v1/pair|ui/(login|logout|lang/\{code:str\}|static(/.*)?"
    r"|scan/pair|sw\.js))?$"
)
#: What a refusal body may hold: the problem fields and the names of what was refused.
REFUSAL_FIELDS = {
    "type",
    "title",
    "status",
    "code",
    "detail",
    "role",
    "tube",
    "box",
    "seq",
    "count",
    "site",
    "lab",
    "grid",
    "device",
}
#: Values for path parameters: objects of the round under test.
PARAMS = {
    "round_id": "r1",
    "tube": tube(1),
    "box": codes.make_box(1),
    "code": tube(1),
    "device_id": "nobody",
    "grid": "G1",
    "lab": "L1",
    "site": "S1",
    "name": "coverage",
}


def endpoints(app: Litestar) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(method, path template, roles) for every handler of the app; roles None = public.

    Pages (``opt["page"]``) answer a person (a redirect to the login page, an HTML
    refusal) rather than a problem document: tests/web checks their roles."""
    out = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.opt.get("page"):
                continue
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                out.append((method, route.path, handler.opt.get("roles")))
    return sorted(set(out))


def fill(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAMS.get(m.group(1), "x1"), path)


@pytest.fixture
def settings(server: EmbeddedServer, tmp_path: Path) -> Settings:
    return Settings(redis_url=server.url, data_dir=tmp_path, secret_hex=SECRET, device_rate=100_000)


@pytest.fixture
def world(api: Api) -> dict[str, str]:
    """Round r1; sites S1 (grid G1) and S2 (grid G2); one device per role at S1 / L1 / G1,
    and a second scanner, sealer, lab and grid team elsewhere. Returns tokens by name."""
    api.round()
    api.site("S1", grid="G1")
    api.site("S2", grid="G2")
    toks = {"admin": api.admin}
    for role in ROLES:
        if role != "admin":
            toks[role] = api.device(f"{role}1", role, site="S1", lab="L1", grid="G1")
    toks["scanner2"] = api.device("scanner2", "scanner", site="S2")
    toks["sealer2"] = api.device("sealer2", "sealer", site="S2")
    toks["lab2"] = api.device("lab2", "lab", lab="L2")
    toks["grid2"] = api.device("grid2", "grid", grid="G2")
    return toks


def assert_refusal_leaks_nothing(resp: Any, secrets: list[str]) -> None:
    body = resp.json()
    assert set(body) <= REFUSAL_FIELDS, body
    assert body["status"] == resp.status_code
    text = resp.text
    for s in secrets:
        assert s not in text


def test_every_role_against_every_endpoint(api: Api, world: dict[str, str]) -> None:
    app = api.client.app
    table = endpoints(app)
    assert len(table) >= 20
    for method, path, roles in table:
        if roles is None:
            assert PUBLIC.match(path), f"{method} {path} has no roles: every /v1 route needs some"
            continue
        assert set(roles) <= set(ROLES), (path, roles)
        # Policy the table must keep, whatever handlers are added:
        if method != "GET":
            assert "viewer" not in roles, f"viewer is read-only: {method} {path}"
        if path.startswith(("/v1/devices", "/v1/sites")) and method != "GET":
            assert roles == ("admin",), (method, path)
        if "/tubes" in path and method == "POST" and "/boxes/" not in path:
            assert set(roles) <= {"scanner", "admin"}, (method, path, roles)
        url = fill(path)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        # No token, a malformed one, an unknown one: 401 before anything else.
        for headers in (
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": "Bearer ghost.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
            {"Authorization": "Basic " + world["admin"]},
        ):
            resp = api.client.request(method, url, json=body, headers=headers)
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.json()["code"] == "unauthorized"
            assert_refusal_leaks_nothing(resp, [world["admin"]])
        for role in ROLES:
            resp = api.client.request(method, url, json=body, headers=api.h(world[role]))
            refused = resp.status_code == 403 and resp.json().get("role") == role
            if role in roles:
                assert resp.status_code != 401 and not refused, (method, path, role, resp.text)
                assert resp.status_code < 500, (method, path, role, resp.text)
            else:
                assert resp.status_code == 403, (method, path, role, resp.text)
                assert resp.json()["code"] == "forbidden"
                assert_refusal_leaks_nothing(resp, [world[role]])


def test_other_sites_objects(api: Api, world: dict[str, str]) -> None:
    mine, theirs = world["scanner"], world["scanner2"]
    assert api.open(mine, tube(1), capacity=5).status_code == 201
    assert api.scan(mine, tube(1), resident(1)).status_code == 200
    own_view = api.get(f"/v1/rounds/r1/tubes/{tube(1)}", mine).json()
    refs = [m["ref"] for m in own_view["members"]]
    assert refs
    secrets = [*refs, resident(1), resident(2)]
    refusals = [
        (api.get(f"/v1/rounds/r1/tubes/{tube(1)}", theirs), 403, "forbidden"),
        (api.get(f"/v1/rounds/r1/tubes/{tube(1)}", world["sealer2"]), 403, "forbidden"),
        (api.scan(theirs, tube(1), resident(2)), 403, "tube_other_site"),
        (
            api.post(
                f"/v1/rounds/r1/tubes/{tube(1)}/undo",
                theirs,
                {"op": "u", "seq": 7, "resident": resident(1)},
            ),
            403,
            "tube_other_site",
        ),
        (
            api.post(f"/v1/rounds/r1/tubes/{tube(1)}/close", theirs, {"op": "c", "seq": 8}),
            403,
            "tube_other_site",
        ),
        (
            api.post(
                "/v1/rounds/r1/batches",
                theirs,
                {
                    "ops": [
                        {
                            "op": "b",
                            "seq": 9,
                            "kind": "scan",
                            "tube": tube(1),
                            "resident": resident(2),
                        }
                    ]
                },
            ),
            200,
            None,
        ),
    ]
    for resp, status, code in refusals:
        assert resp.status_code == status, resp.text
        if code is None:  # a batch answers per operation
            assert resp.json()["results"][0]["status"] == "tube_other_site"
            assert resp.json()["applied"] == 0
        else:
            assert resp.json()["code"] == code
            assert_refusal_leaks_nothing(resp, secrets)
    assert api.get(f"/v1/rounds/r1/tubes/{tube(1)}", mine).json() == own_view


def test_other_labs_boxes(api: Api, world: dict[str, str]) -> None:
    box = codes.make_box(1)
    resp = api.post(
        "/v1/rounds/r1/boxes", world["sealer"], {"op": "ob", "seq": 1, "box": box, "lab": "L1"}
    )
    assert resp.status_code == 201, resp.text
    for who in ("sealer", "lab", "admin", "viewer"):
        assert api.get(f"/v1/rounds/r1/boxes/{box}", world[who]).status_code == 200, who
    for who in ("sealer2", "lab2"):
        for sub in ("", "/manifest", "/manifest.pdf", "/discrepancies"):
            resp = api.get(f"/v1/rounds/r1/boxes/{box}{sub}", world[who])
            assert resp.status_code == 403, (who, sub, resp.text)
            assert_refusal_leaks_nothing(resp, [])
    for who in ("scanner", "grid"):
        resp = api.get(f"/v1/rounds/r1/boxes/{box}", world[who])
        assert resp.status_code == 403 and resp.json()["role"] == who
    # A courier uploading results, a grid team reading another grid's door list.
    for method, path, _ in endpoints(api.client.app):
        if method == "POST" and "/results" in path:
            resp = api.post(fill(path), world["courier"], {})
            assert resp.status_code == 403, (path, resp.text)
            assert_refusal_leaks_nothing(resp, [])
        if method == "GET" and "{grid" in path:
            assert api.get(fill(path), world["grid"]).status_code != 403, path
            resp = api.get(fill(path).replace("G1", "G2"), world["grid"])
            assert resp.status_code == 403, (path, resp.text)
            assert_refusal_leaks_nothing(resp, [])


def test_tokens_are_stored_hashed(api: Api, world: dict[str, str], r: redis.Redis) -> None:
    dump = repr(snapshot(r)).encode()
    for token in world.values():
        _, _, secret = token.partition(".")
        assert secret.encode() not in dump
        assert token.encode() not in dump


def test_expired_token_stops_working(api: Api, world: dict[str, str]) -> None:
    services = api.client.app.state.services

    async def make() -> str:
        spec = DeviceIn(id="old", role="scanner", site="S1", expires_in=60)
        made = await Devices(services.redis).create(spec, now=time.time() - 61)
        return made.token

    old = api.client.blocking_portal.call(make)  # type: ignore[union-attr]
    for resp in (api.get("/v1/whoami", old), api.open(old, tube(5))):
        assert resp.status_code == 401, resp.text
        assert "expired" in resp.json()["detail"]


@pytest.fixture
def second_worker(api: Api, settings: Settings) -> Iterator[Api]:
    """Another API worker on the same Redis (its own auth cache)."""
    with TestClient(app=create_app(settings)) as client:
        other = Api.__new__(Api)
        other.client, other.admin, other._seq = client, api.admin, {}
        yield other


def test_revoked_token_stops_at_once_in_every_worker(
    api: Api, second_worker: Api, world: dict[str, str]
) -> None:
    tok = world["scanner"]
    assert api.open(tok, tube(1)).status_code == 201
    assert api.scan(tok, tube(1), resident(1)).status_code == 200  # auth now cached here
    resp = second_worker.post("/v1/devices/scanner1/revoke", api.admin, {})
    assert resp.status_code == 200, resp.text
    second_worker.round("r2")  # a round made after the revocation refuses it too
    for attempt in (
        api.scan(tok, tube(1), resident(2)),  # hot path: cached auth, the script refuses
        api.post(
            "/v1/rounds/r1/batches",
            tok,
            {
                "ops": [
                    {"op": "x", "seq": 99, "kind": "scan", "tube": tube(1), "resident": resident(3)}
                ]
            },
        ),
        api.open(tok, tube(2), round_id="r2"),
        api.get("/v1/whoami", tok),
        api.get(f"/v1/rounds/r1/tubes/{tube(1)}", tok),
    ):
        assert attempt.status_code == 401, attempt.text
        assert_refusal_leaks_nothing(attempt, [resident(1)])
    assert api.get(f"/v1/rounds/r1/tubes/{tube(1)}", api.admin).json()["count"] == 1
