"""The HTTP routes, on the real app (real Valkey, device tokens, problem details)."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sampling import codes
from sampling.scan import images, synth
from tests.conftest import Api, tube

TOKEN = codes.make_resident_token("0123456789ABCDEF")


@pytest.fixture
def client(api: Api) -> Iterator[TestClient[Litestar]]:
    api.round()
    api.site("S1")
    token = api.device("hh1", site="S1")
    api.client.headers.update(api.h(token))
    yield api.client


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


QR_PNG = _png(np.pad(synth.render_qr(TOKEN), 40, constant_values=150))


def test_decode_one_image(client: TestClient[Litestar]) -> None:
    r = client.post("/v1/decode", files={"image": ("qr.png", QR_PNG, "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert body["codes"] == [{"text": TOKEN, "format": "QRCode", "kind": "resident", "valid": True}]
    assert body["frames_used"] == []
    assert body["ms"] >= 0


def test_decode_frames(client: TestClient[Litestar]) -> None:
    blank = _png(np.full((200, 200), 128, np.uint8))
    r = client.post(
        "/v1/decode",
        files=[
            ("frames", ("a.png", blank, "image/png")),
            ("frames", ("b.png", QR_PNG, "image/png")),
        ],
    )
    assert r.status_code == 200
    assert r.json()["frames_used"] == [1]
    assert r.json()["codes"][0]["text"] == TOKEN


def test_not_an_image_is_415(client: TestClient[Litestar]) -> None:
    r = client.post("/v1/decode", files={"image": ("x.png", b"GIF89a but not really", "image/png")})
    assert r.status_code == 415
    assert r.json()["code"] == "not_an_image"


def test_too_many_frames_is_413(client: TestClient[Litestar]) -> None:
    files = [("frames", (f"{i}.png", QR_PNG, "image/png")) for i in range(6)]
    r = client.post("/v1/decode", files=files)
    assert r.status_code == 413
    assert r.json()["code"] == "too_many_frames"


def test_too_many_bytes_is_413(client: TestClient[Litestar]) -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * images.MAX_BYTES
    r = client.post("/v1/decode", files={"image": ("big.png", big, "image/png")})
    assert r.status_code == 413
    assert r.json()["code"] == "image_too_large"


def test_no_image_is_400(client: TestClient[Litestar]) -> None:
    r = client.post("/v1/decode", files={"other": ("x.png", QR_PNG, "image/png")})
    assert r.status_code == 400


def test_check_typed_code(client: TestClient[Litestar]) -> None:
    good = codes.make_tube(12345678901)
    r = client.post("/v1/codes/check", json={"code": good})
    assert r.status_code == 200
    assert r.json() == {
        "code": good,
        "accepted": True,
        "kind": "tube",
        "reason": None,
        "candidates": [],
    }
    slip = good[:3] + good[4] + good[3] + good[5:]
    r = client.post("/v1/codes/check", json={"code": slip})
    body = r.json()
    assert body["accepted"] is False
    assert body["reason"] == "check_failed"
    assert good in body["candidates"]


def test_check_refuses_unknown_fields(client: TestClient[Litestar]) -> None:
    r = client.post("/v1/codes/check", json={"code": "T1", "extra": 1})
    assert r.status_code == 400


def test_every_handler_has_an_operation_id(client: TestClient[Litestar]) -> None:
    spec = client.get("/docs/openapi.json").json()
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"decodeImage", "checkTypedCode"} <= ops


def test_scan_by_photo_binds_through_the_binding_rules(client: TestClient[Litestar]) -> None:
    opened = client.post("/v1/rounds/r1/tubes", json={"op": "o1", "seq": 1, "tube": tube(1)})
    assert opened.status_code == 201
    photo = {"image": ("qr.png", QR_PNG, "image/png")}
    r = client.post(
        f"/v1/rounds/r1/tubes/{tube(1)}/photo-scans", files=photo, data={"op": "o2", "seq": "2"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 1
    again = client.post(
        f"/v1/rounds/r1/tubes/{tube(1)}/photo-scans", files=photo, data={"op": "o3", "seq": "3"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "resident_already_sampled"


def test_scan_by_photo_without_a_code_is_422(client: TestClient[Litestar]) -> None:
    client.post("/v1/rounds/r1/tubes", json={"op": "o1", "seq": 1, "tube": tube(1)})
    blank = _png(np.full((200, 200), 128, np.uint8))
    r = client.post(
        f"/v1/rounds/r1/tubes/{tube(1)}/photo-scans",
        files={"image": ("b.png", blank, "image/png")},
        data={"op": "o2", "seq": "2"},
    )
    assert r.status_code == 422
    assert r.json()["code"] == "no_valid_code"
    assert client.get(f"/v1/rounds/r1/tubes/{tube(1)}").json()["count"] == 0


def test_decode_needs_a_token(api: Api) -> None:
    r = api.client.post("/v1/decode", files={"image": ("qr.png", QR_PNG, "image/png")})
    assert r.status_code == 401
