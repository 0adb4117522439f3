from tests.conftest import Api, resident, tube


def test_open_scan_read(api: Api) -> None:
    api.round()
    api.site("S1")
    tok = api.device("d1", site="S1")
    assert api.open(tok, tube(1)).status_code == 201
    resp = api.scan(tok, tube(1), resident(1))
    assert resp.status_code == 200, resp.text
    assert resp.json()["count"] == 1
    again = api.scan(tok, tube(1), resident(1))
    assert again.status_code == 409
    assert again.json()["code"] == "resident_already_sampled"
    assert "Point S1" in again.json()["detail"]
    got = api.get(f"/v1/rounds/r1/tubes/{tube(1)}", tok)
    assert got.json()["count"] == 1
