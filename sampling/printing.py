"""Printed pages: every page headed with where it belongs and "page x of y".

The door lists and the closing report are reportlab documents whose page count
is known only once the last page is laid out; :func:`numbered_canvas` makes a
canvas class that keeps each page and draws the headers when the document is
saved, in the CJK font (``sampling.fonts``).
"""

from __future__ import annotations

from typing import Any

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas


def numbered_canvas(font: str, left: str, printed: str) -> type[Any]:
    """A canvas class heading each page with ``left`` at the left and, at the right,
    ``第 x/y 页 page x of y   打印于 printed <printed>``."""

    class Numbered(Canvas):  # type: ignore[misc]
        """Draws each page's header once the page count is known."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, object]] = []

        def showPage(self) -> None:  # reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                width, height = self._pagesize
                self.setFont(font, 9)
                self.drawString(12 * mm, height - 9 * mm, left)
                self.drawRightString(
                    width - 12 * mm,
                    height - 9 * mm,
                    f"第 {number}/{total} 页 page {number} of {total}   打印于 printed {printed}",
                )
                super().showPage()
            super().save()

    return Numbered
