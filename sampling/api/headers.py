"""Header values built from data a client chose (a grid name, a round id)."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

#: What may stand in the plain ``filename="..."`` fallback: no quote, backslash,
#: control character (CR/LF would split the header) or anything beyond ASCII.
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._ -]")


def attachment(filename: str, *, inline: bool = False) -> str:
    """A ``Content-Disposition`` value for ``filename`` whatever it holds (RFC 6266).

    An ASCII fallback for old clients, and the exact name UTF-8 percent-encoded in
    ``filename*`` (RFC 5987), which every current browser prefers.
    """
    fallback = _UNSAFE.sub("_", filename) or "download"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
