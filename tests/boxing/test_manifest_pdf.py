"""The printed manifest: the site's Chinese name in an embedded font, single (risk)
tubes marked, headings in Chinese and English, the seal time in the district zone."""

from __future__ import annotations

import subprocess

from sampling import codes, localtime
from tests.conftest import Api, resident, tube


def test_manifest_pdf_is_bilingual_with_the_site_name_and_single_tubes(api: Api) -> None:
    api.round()
    site = {"id": "S9", "name": "花园路采样点", "street": "花园路街道", "community": "花园社区",
            "grid": "G1"}  # fmt: skip
    assert api.post("/v1/sites", api.admin, site).status_code == 201
    scanner = api.device("d9", site="S9")
    sealer = api.device("seal9", "sealer", site="S9")
    pooled, single = tube(701), tube(702)
    assert api.open(scanner, pooled, capacity=5).status_code == 201
    for n in (1, 2):
        assert api.scan(scanner, pooled, resident(700 + n)).status_code == 200
    seq = api.next_seq(scanner)
    close = {"op": f"op-{seq}", "seq": seq}
    assert api.post(f"/v1/rounds/r1/tubes/{pooled}/close", scanner, close).status_code == 200
    assert api.open(scanner, single, capacity=1).status_code == 201
    assert api.scan(scanner, single, resident(703)).status_code == 200  # full: closed
    box = codes.make_box(901)
    base = "/v1/rounds/r1/boxes"
    assert api.post(base, sealer, {"op": "o", "seq": 1, "box": box}).status_code == 201
    for i, t in enumerate((pooled, single), start=2):
        got = api.post(f"{base}/{box}/tubes", sealer, {"op": f"a{i}", "seq": i, "tube": t})
        assert got.status_code == 200, got.text
    seal = {"op": "s", "seq": 9, "tubes": 2, "samples": 3, "lab": "L1"}
    assert api.post(f"{base}/{box}/seal", sealer, seal).status_code == 200

    m = api.get(f"{base}/{box}/manifest", sealer).json()
    assert m["site_name"] == "花园路采样点" and m["singles"] == [single]
    pdf = api.get(f"{base}/{box}/manifest.pdf", sealer)
    assert pdf.status_code == 200 and b"/FontFile2" in pdf.content
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf.content,
                          capture_output=True, check=True).stdout.decode()  # fmt: skip
    assert "花园路采样点 (S9)" in text
    assert "转运箱清单" in text and "Transfer box" in text
    assert "管数 Tubes: 2" in text and "样本数 Samples: 3" in text
    assert localtime.stamp(m["sealed_at"]) in text
    single_line = next(line for line in text.splitlines() if single in line)
    pooled_line = next(line for line in text.splitlines() if pooled in line)
    assert "单管" in single_line and "单管" not in pooled_line
