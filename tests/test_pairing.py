"""Pairing a handheld: a one-time code, exchanged once for the device's token."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from sampling.auth import keys
from sampling.auth.pairing import PAIRING_TTL, normalize
from sampling.store.embedded import EmbeddedServer
from tests.conftest import SECRET, Api


@pytest.fixture
def first(api: Api) -> str:
    """The scanner d1 at S1; the token it was created with."""
    api.site("S1")
    return api.device("d1", site="S1")


def make(api: Api, device: str = "d1") -> str:
    resp = api.post(f"/v1/devices/{device}/pairing", api.admin, {})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", body["code"])
    code: str = body["code"]
    return code


def pair(api: Api, code: str) -> object:
    return api.client.post("/v1/pair", json={"code": code})


def test_exchange_once(api: Api, first: str, r: redis.Redis) -> None:
    code = make(api)
    # Only the code's hash is kept, with its 10-minute life.
    (key,) = r.keys("sampling:pair:*")
    assert normalize(code) not in key.decode() and code not in key.decode()
    assert 0 < r.ttl(key) <= PAIRING_TTL
    got = pair(api, code.lower().replace("-", " "))  # read forgivingly
    assert got.status_code == 200, got.text
    token = got.json()["token"]
    assert token.startswith("d1.") and token != first
    assert got.json()["device"]["id"] == "d1"
    assert api.get("/v1/rounds", token).status_code == 200
    # The device has one live token: the one it was created with stops.
    assert api.get("/v1/rounds", first).status_code == 401
    assert r.keys("sampling:pair:*") == []

    again = pair(api, code)
    assert again.status_code == 401
    assert again.json()["code"] == "pairing_failed"
    assert "ask the admin for a new one" in again.json()["detail"]
    assert api.get("/v1/rounds", token).status_code == 200


def test_expired_code_fails(api: Api, first: str, r: redis.Redis) -> None:
    code = make(api)
    (key,) = r.keys("sampling:pair:*")
    r.pexpire(key, 1)
    time.sleep(0.05)
    got = pair(api, code)
    assert got.status_code == 401
    assert got.json()["code"] == "pairing_failed"
    assert api.get("/v1/rounds", first).status_code == 200  # nothing changed


def test_revoked_device_cannot_pair(api: Api, first: str) -> None:
    code = make(api)
    assert api.post("/v1/devices/d1/revoke", api.admin, {}).status_code in (200, 201)
    assert pair(api, code).status_code == 401
    assert api.post("/v1/devices/d1/pairing", api.admin, {}).status_code == 400


def test_bad_codes_and_roles(api: Api, first: str, r: redis.Redis) -> None:
    got = pair(api, "12345")
    assert got.status_code == 400
    assert got.json()["code"] == "bad_input"
    assert api.post("/v1/devices/d1/pairing", first, {}).status_code == 403
    assert api.post("/v1/devices/nobody/pairing", api.admin, {}).status_code == 404
    assert r.keys("sampling:pair:*") == []


def test_exchange_is_rate_limited(api: Api, first: str) -> None:
    answers = [pair(api, "ABCDE-FGHJK").status_code for _ in range(4)]
    assert answers[:2] == [401, 401]
    assert 429 in answers[2:]


def test_cli_pair(
    api: Api, first: str, server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAMPLING_REDIS_URL", server.url)
    monkeypatch.setenv("SAMPLING_SECRET", SECRET)
    monkeypatch.setenv("SAMPLING_DATA_DIR", str(tmp_path))
    from sampling.cli import main

    def invoke(*args: str) -> Result:
        # In its own thread: a Playwright session in this process keeps a loop running here.
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(CliRunner().invoke, main, list(args)).result()

    svg = tmp_path / "qr.svg"
    got = invoke("device", "pair", "d1", "--svg", str(svg))
    assert got.exit_code == 0, got.output
    code = got.output.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", code)
    assert svg.read_text().startswith("<?xml")
    assert pair(api, code).status_code == 200
    missing = invoke("device", "pair", "nobody")
    assert missing.exit_code != 0
    assert "no device nobody" in missing.output


def test_code_key_shares_the_registry_slot() -> None:
    from redis.crc import key_slot

    assert key_slot(keys.pairing("ab" * 32).encode()) == key_slot(keys.DEVICES.encode())
