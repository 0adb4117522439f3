"""One error tree for the whole service.

Domain code raises these; the HTTP layer turns every one of them into an RFC 9457
problem document through one table (``sampling.api.problems``), and the CLI
prints ``code: message``. Each class carries its stable machine-readable
``code`` and its HTTP ``status``; each instance carries a message a person can
act on and the fields that explain it (``detail``)::

    SamplingError
    ├── BadInput (400)            malformed request, garbled code, bad file
    │   ├── GarbledCode            a code failed its check character
    │   └── BatchTooLarge (413)
    ├── AuthError (401)           missing, unknown, expired or revoked token
    ├── Forbidden (403)           role or ownership does not allow it
    │   └── CsrfFailed             a signed-in page's change without its CSRF header
    ├── NotFound (404)
    ├── Conflict (409)            a rule of the domain refuses the change
    │   (tube_full, resident_already_sampled, tube_used, ...)
    ├── OperationReused (422)     same operation id, different payload
    ├── RateLimited (429)
    └── Unavailable (503)         Redis cannot be reached; retry later
        └── NotDurable             the write was not confirmed on disk in time

Domain packages subclass these (``sampling.binding.errors`` and so on) or raise
:class:`Refusal` with the status word a script returned.
"""

from __future__ import annotations

from typing import Any


class SamplingError(Exception):
    code: str = "error"
    status: int = 500

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class BadInput(SamplingError):
    code = "bad_input"
    status = 400


class GarbledCode(BadInput):
    code = "garbled_code"


class BatchTooLarge(BadInput):
    code = "batch_too_large"
    status = 413


class AuthError(SamplingError):
    code = "unauthorized"
    status = 401


class Forbidden(SamplingError):
    code = "forbidden"
    status = 403


class CsrfFailed(Forbidden):
    """A cookie-authenticated change without the matching ``X-CSRF-Token`` header."""

    code = "csrf_failed"


class NotFound(SamplingError):
    code = "not_found"
    status = 404


class Conflict(SamplingError):
    """A rule of the domain refuses the change; ``code`` says which rule."""

    code = "conflict"
    status = 409


class OperationReused(SamplingError):
    code = "operation_reused"
    status = 422


class RateLimited(SamplingError):
    code = "rate_limited"
    status = 429


class Unavailable(SamplingError):
    code = "unavailable"
    status = 503


class NotDurable(Unavailable):
    """WAITAOF did not confirm the local fsync in time: the write may not survive a crash."""

    code = "not_durable"

    def __init__(self) -> None:
        super().__init__(
            "the server did not confirm the write to disk in time; retry with the same operation id"
        )


class Refusal(Conflict):
    """A refusal whose code comes from data (a script's status word), not a class."""

    def __init__(self, code: str, message: str, status: int = 409, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.code = code
        self.status = status
