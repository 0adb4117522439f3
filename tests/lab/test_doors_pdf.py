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
