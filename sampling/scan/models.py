"""What a decode or a typed-code check answers, as msgspec Structs."""

from __future__ import annotations

from sampling.codes import CodeKind
from sampling.schema import Base, Code


class DecodedCode(Base, frozen=True):
    """One code read from an image; ``valid`` only when its check character agrees."""

    text: str
    format: str
    kind: CodeKind
    valid: bool


class DecodeResult(Base, frozen=True):
    """The codes read from one image (or one label shot in several frames).

    ``codes`` lists valid codes first. ``frames_used`` holds the indices of the
    frames whose pixels produced the read (empty for a single image);
    ``preparation`` names the image preparation that made it readable, ``raw``
    when none was needed and ``None`` when nothing was read.
    """

    codes: tuple[DecodedCode, ...]
    ms: float
    frames_used: tuple[int, ...] = ()
    preparation: str | None = None


class TypedCheck(Base, frozen=True):
    """A hand-typed code, accepted or refused with a reason and likely corrections."""

    code: str
    accepted: bool
    kind: CodeKind
    reason: str | None = None
    candidates: tuple[str, ...] = ()


class CodeCheckRequest(Base, frozen=True):
    code: Code
