"""Checking a code typed or scanned at any door of the API: the canonical code, or a refusal.

Every domain takes codes from people (binding, boxing, lab results, door
outcomes, the audit): one place turns a read into its canonical form or into a
400 that tells the person what is wrong with it. ``sampling.codes`` knows the
code families; this module speaks to the person holding the scanner.
"""

from __future__ import annotations

from functools import lru_cache

from sampling import codes
from sampling.errors import BadInput, GarbledCode


def check_code(text: str, kind: codes.CodeKind, field: str) -> str:
    """The canonical code, or a 400 that tells the sampler what is wrong with the read."""
    code = codes.normalize(text)
    if codes.is_valid(code, kind):
        return code
    found = codes.classify(code)
    if found is kind:
        raise GarbledCode(
            f"{field} {code} fails its check character: a partial or misread scan. Scan it "
            "again, or type it and confirm one of the suggested codes.",
            field=field,
            candidates=codes.typo_candidates(code),
        )
    if found is codes.CodeKind.UNKNOWN:
        raise GarbledCode(
            f"{field} '{code[:24]}' is not a {kind.value} code. Scan again.", field=field
        )
    raise BadInput(
        f"{field} {code} is a {found.value} code, not a {kind.value} code.",
        field=field,
        kind=found.value,
    )


@lru_cache(maxsize=65_536)
def tube_code(text: str) -> str:
    """``check_code`` for a tube, cached: a tube code comes with every scan into it."""
    return check_code(text, codes.CodeKind.TUBE, "tube")
