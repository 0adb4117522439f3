"""A round closes with its report: a hand-built round closed through the CLI, the one
before it through the API; states add up to the number bound, coverage equals the
reports' and the live page's, and the CSV, XLSX and PDF read back as written."""

from __future__ import annotations

import io
import subprocess
import time
from typing import TYPE_CHECKING, Any

import polars as pl
from click.testing import CliRunner

from sampling import localtime
from sampling.cli import main
from sampling.lab import closing
from sampling.lab.register import import_register
from sampling.privacy import ResidentHasher
from tests.boxing.field import Field, new_box
from tests.conftest import SECRET, Api, resident, tube

if TYPE_CHECKING:
    from pathlib import Path

    from sampling.settings import Settings

TZ = "Asia/Shanghai"
#: Residents far from the numbers other tests' fields scan (their counter starts at 1).
N = 700_000
#: (resident, name, grid, building, labels): 9 is vacant (not counted anywhere).
PEOPLE = [
    (1, "G1", "1", ""), (2, "G1", "1", ""), (3, "G1", "2", ""), (4, "G1", "2", ""),
    (5, "G1", "3", ""), (6, "G2", "1", ""), (7, "G2", "2", "独居老人"), (8, "G2", "3", ""),
    (9, "G1", "4", "空置"), (10, "G2", "4", ""),
]  # fmt: skip


def who(n: int) -> str:
    return resident(N + n)


def cli(settings: Settings, *args: str) -> Any:
    env = {
        "SAMPLING_REDIS_URL": settings.redis_url,
        "SAMPLING_DATA_DIR": str(settings.data_dir),
        "SAMPLING_SECRET": SECRET,
        "SAMPLING_TZ": TZ,
        "COLUMNS": "200",
    }
    return CliRunner().invoke(main, list(args), env=env)


def _register(settings: Settings, tmp_path: Path) -> None:
    lines = ["resident,name,phone,street,community,grid,building,unit,household,labels,colour"]
    for n, grid, b, labels in PEOPLE:
        lines.append(f"{who(n)},居民{n},1390000{n:04d},街道1,社区1,{grid},{b},1,101,{labels},绿")
    path = tmp_path / "register.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep, _ = import_register(path, ResidentHasher(bytes.fromhex(SECRET)), settings.data_dir)
    assert rep.rows_stored == len(PEOPLE), rep


def _bind(api: Api, token: str, round_id: str, code: str, people: list[int]) -> None:
    assert api.open(token, code, round_id).status_code == 201
    for n in people:
        got = api.scan(token, code, who(n), round_id)
        assert got.status_code == 200, got.text
    seq = api.next_seq(token)
    done = api.post(f"/v1/rounds/{round_id}/tubes/{code}/close", token,
                    {"op": f"op-{seq}", "seq": seq})  # fmt: skip
    assert done.status_code == 200, done.text


def _round_pair(api: Api, settings: Settings, tmp_path: Path) -> Field:
    """r0 (residents 1, 2 sampled), closed over the API; then r1: tube A (1, 3, 4)
    negative, tube B (5, 6) damaged at intake and without a result, tube C (10)
    positive, and a result for a tube no one bound. Missed in both: 7 and 8."""
    _register(settings, tmp_path)
    api.round("r0")
    f = Field(api, "r1")
    _bind(api, api.device("d0", site="S1"), "r0", tube(N + 1), [1, 2])
    closed = api.post("/v1/rounds/r0/close", api.admin, {})
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed" and closed.json()["closing"]["bound"] == 2

    a, b, c = tube(N + 11), tube(N + 12), tube(N + 13)
    scanner = f.scanner["S1"]
    _bind(api, scanner, "r1", a, [1, 3, 4])
    _bind(api, scanner, "r1", b, [5, 6])
    _bind(api, scanner, "r1", c, [10])
    box = new_box()
    assert f.open(box).status_code == 201
    for t in (a, b):
        assert f.add(box, t).status_code == 200
    assert f.seal(box, 2, 5, lab="LA").status_code == 200
    for step in (f.handover, f.pickup, f.receive):
        assert step(box).status_code == 200
    assert f.intake(box, a).status_code == 200
    assert f.intake(box, b, "leaking").status_code == 200
    assert f.close_intake(box).status_code == 200
    rows = [
        {"tube": a, "outcome": "negative", "lab": "LA"},
        {"tube": c, "outcome": "positive", "ct_orf1ab": 24.5, "ct_n": 26.0, "lab": "LA"},
        {"tube": tube(N + 99), "outcome": "negative", "lab": "LA"},
    ]
    at = localtime.local(time.time()).isoformat()
    sent = api.post("/v1/rounds/r1/results", api.admin,
                    {"results": [{**row, "tested_at": at} for row in rows]})  # fmt: skip
    assert sent.status_code == 200, sent.text
    assert (sent.json()["stored"], sent.json()["orphan"]) == (2, 1)
    return f


def _pdf_text(data: bytes, tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    return [p for p in text.split("\f") if p.strip()]


def test_closing_a_round_writes_its_report(api: Api, settings: Settings, tmp_path: Path) -> None:
    f = _round_pair(api, settings, tmp_path)
    viewer = f.viewer
    # Not closed yet: there is no report, and writing one is refused.
    missing = api.get("/v1/rounds/r1/closing-report", viewer)
    assert (missing.status_code, missing.json()["code"]) == (404, "no_closing_report")
    early = api.post("/v1/rounds/r1/closing-report", api.admin, {})
    assert (early.status_code, early.json()["code"]) == (409, "round_open")

    done = cli(settings, "round", "close", "r1", "--reason", "第一轮结束")
    assert done.exit_code == 0, done.output
    assert "round r1 closed" in done.output and "各状态合计 states add up to: 6 = 6" in done.output
    again = cli(settings, "round", "close", "r1")
    assert again.exit_code == 1 and "already closed" in again.output

    s = api.get("/v1/rounds/r1/closing-report", viewer).json()
    assert s["bound"] == 6 == sum(s["states"].values())
    assert s["states"] == {"negative": 3, "positive": 1, "invalid": 0, "lost": 2, "awaiting": 0}
    assert s["resulted"] == 4
    assert (s["resample_open"], s["discrepancies"], s["no_shows"]) == (3, 2, 2)
    assert s["closed_by"] and s["reason"] == "第一轮结束"
    assert s["as_of"] >= s["closed_at"] >= s["created_at"]
    counters = api.get("/v1/rounds/r1/counters", api.admin).json()
    assert counters["bound"] == s["bound"]

    # Coverage: the same figures as the coverage reports and the live page.
    report_grid = api.get("/v1/rounds/r1/reports/coverage_grid", viewer).json()
    live = api.get("/v1/rounds/r1/live", viewer).json()["coverage"]
    live_grid = {x["name"]: (x["expected"], x["sampled"]) for x in live if x["level"] == "grid"}
    assert live_grid == {"G1": (5, 4), "G2": (4, 2)}
    csv = api.get("/v1/rounds/r1/closing-report?format=csv&section=coverage_grid", viewer)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.content.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the Chinese headings
    grid = pl.read_csv(io.BytesIO(csv.content))
    assert grid.columns[:3] == ["街道 street", "社区 community", "网格 grid"]
    got = {r["网格 grid"]: (r["人数 residents"], r["已采 sampled"])
           for r in grid.iter_rows(named=True)}  # fmt: skip
    assert got == live_grid == {x["grid"]: (x["residents"], x["sampled"]) for x in report_grid}
    assert s["coverage"] == {"residents": 9, "sampled": 6, "pct": 66.67}

    # The XLSX: a sheet per section; the admin's names the residents, the viewer's not.
    full = api.get("/v1/rounds/r1/closing-report?format=xlsx", api.admin)
    assert full.status_code == 200 and full.content.startswith(b"PK")
    sheets = pl.read_excel(io.BytesIO(full.content), sheet_id=0)
    assert list(sheets) == list(closing.SECTIONS)
    states = sheets["states"]
    assert states["人数 residents"].to_list() == [3, 1, 0, 2, 0, 6]
    assert states["状态 state"].to_list()[-1].startswith("合计 total")
    no_shows = sheets["no_shows"]
    assert sorted(no_shows["姓名 name"]) == ["居民7", "居民8"]
    assert set(no_shows["未采轮次 rounds missed"]) == {"r0,r1"}
    orders = sheets["resample_open"]
    assert orders["优先 priority"].to_list() == ["紧急 urgent", "一般 normal", "一般 normal"]
    assert sorted(orders["姓名 name"]) == ["居民10", "居民5", "居民6"]
    kinds = sorted(sheets["discrepancies"]["类型 kind"])
    assert kinds == ["无绑定结果 orphan result", "破损 damaged"]
    seen = pl.read_excel(
        io.BytesIO(api.get("/v1/rounds/r1/closing-report?format=xlsx", viewer).content),
        sheet_id=0,
    )
    for key in ("no_shows", "resample_open"):
        assert "姓名 name" not in seen[key].columns and "电话 phone" not in seen[key].columns
        assert seen[key].height == sheets[key].height

    # The PDF, printed: headed pages, the states adding up, local times, the CJK font.
    pdf = api.get("/v1/rounds/r1/closing-report?format=pdf", api.admin)
    assert pdf.headers["content-type"] == "application/pdf"
    pages = _pdf_text(pdf.content, tmp_path, "admin.pdf")
    for number, page in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in page and "轮次 Round r1" in page
    text = "\n".join(pages)
    assert "轮次结案报告" in pages[0] and "6=6" in pages[0].replace(" ", "")
    assert localtime.stamp(s["closed_at"], TZ) in pages[0]
    assert "居民7" in text and "13900000007" in text
    viewer_text = "\n".join(_pdf_text(
        api.get("/v1/rounds/r1/closing-report?format=pdf", viewer).content, tmp_path, "v.pdf"
    ))  # fmt: skip
    assert "居民7" not in viewer_text and "13900000007" not in viewer_text
    assert "网格 grid" in viewer_text

    # Files on the data directory, as the CLI said.
    where = closing.directory(settings.data_dir, "r1")
    assert str(where) in done.output
    for variant in closing.VARIANTS:
        assert (where / variant / "closing-r1.pdf").exists()
        assert (where / variant / "closing-r1-states.csv").exists()


def test_closing_report_refusals_and_rewrite(api: Api, settings: Settings, tmp_path: Path) -> None:
    _round_pair(api, settings, tmp_path)
    viewer = api.device("v9", role="viewer")
    grid = api.device("g9", role="grid", grid="G1")
    assert api.get("/v1/rounds/r0/closing-report", grid).status_code == 403
    unknown = api.get("/v1/rounds/zz/closing-report", viewer)
    assert unknown.status_code == 404 and unknown.json()["code"] == "round_not_found"
    bad = api.get("/v1/rounds/r0/closing-report?format=csv&section=../x", viewer)
    assert bad.status_code == 404
    assert api.get("/v1/rounds/r0/closing-report?format=doc", viewer).status_code == 400
    assert api.post("/v1/rounds/r0/closing-report", viewer, {}).status_code == 403
    first = api.get("/v1/rounds/r0/closing-report", viewer).json()
    # Written again (late results, a cut-short close): same figures, a later time.
    redone = api.post("/v1/rounds/r0/closing-report", api.admin, {})
    assert redone.status_code == 200, redone.text
    assert redone.json()["bound"] == first["bound"] == 2
    assert redone.json()["written_at"] >= first["written_at"]
    report = cli(settings, "round", "report", "r0", "--json")
    assert report.exit_code == 0, report.output
    assert '"bound":2' in report.output
    still_open = cli(settings, "round", "report", "r1")
    assert still_open.exit_code == 1 and "round_open" in still_open.output
