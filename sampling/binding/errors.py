"""Errors of the binding core that are classes of their own (the script's refusals
arrive as :class:`sampling.errors.Refusal` with the script's status word)."""

from __future__ import annotations

from sampling.errors import BadInput, NotFound


class RoundNotFound(NotFound):
    code = "round_not_found"


class TubeNotFound(NotFound):
    code = "tube_not_found"


class ReasonRequired(BadInput):
    """A manual risk flag without a reason: the journal must say why it overrides the
    register."""

    code = "reason_required"
