"""Errors of the lab package that are classes of their own."""

from __future__ import annotations

from sampling.errors import Forbidden


class PersonalData(Forbidden):
    """The frame names residents (names, phone numbers, addresses, Ct values) and the
    caller's role has no need of them (DESIGN invariant 8)."""

    code = "personal_data"
