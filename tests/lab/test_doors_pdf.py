"""The door-list PDF carries its Chinese glyphs with it."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from sampling import fonts
from sampling.lab.doors import write_pdf


def test_door_list_pdf_embeds_a_chinese_font(tmp_path: Path) -> None:
    doors = pl.DataFrame(
        {
            "building": ["3号楼"],
            "unit": ["1单元"],
            "household": ["G001-3号楼-1单元-0902"],
            "name": ["董一轩"],
            "phone": ["18730852128"],
            "resident": ["4101**********7645"],
            "mark": ["home_sampling"],
        }
    )
    pdf = write_pdf(doors, tmp_path / "g.pdf", title="G001").read_bytes()
    if any(p.exists() for p in fonts.CANDIDATES):
        # A TrueType font, subset and embedded: every viewer renders the names.
        assert b"/FontFile2" in pdf
        assert fonts.cjk_font() == "CJK"
    else:
        assert fonts.cjk_font() == "STSong-Light"


def test_door_list_pdf_pages_are_headed_and_rows_carry_labels_colour_outcome(
    tmp_path: Path,
) -> None:
    import subprocess
    from datetime import UTC, datetime

    n = 60  # two pages in landscape A4
    doors = pl.DataFrame(
        {
            "building": ["3"] * n,
            "unit": ["1"] * n,
            "household": [f"{100 + i}" for i in range(n)],
            "name": [f"居民{i}" for i in range(n)],
            "phone": [""] * n,
            "resident": ["4101**********7645"] * n,
            "mark": ["home_sampling"] + ["reminder"] * (n - 1),
            "labels": ["elderly_alone;disabled"] + [""] * (n - 1),
            "colour": ["yellow"] + ["green"] * (n - 1),
            "last_outcome": ["not_home"] + [None] * (n - 1),
        }
    )
    at = datetime(2026, 12, 2, 1, 30, tzinfo=UTC).timestamp()  # 09:30 in Shanghai
    path = write_pdf(doors, tmp_path / "g.pdf", title="G001", grid="G001", round_id="r7",
                     tz="Asia/Shanghai", now=at)  # fmt: skip
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in page
        assert "网格 Grid G001" in page and "轮次 Round r7" in page
        assert "printed 2026-12-02 09:30" in page
    first = pages[0]
    assert "独居老人" in first and "残疾" in first and "黄 yellow" in first
    assert "不在家" in first and "□采样" in first
