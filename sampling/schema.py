"""The one documented base of every wire and domain type, and the shared constraints.

``Base`` is frozen (values, not objects to mutate), keyword-only (call sites
stay readable as fields are added) and refuses unknown fields (a typo in a
handheld's JSON is a 400, not a silently ignored field).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta


class Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


# Codes are checked for their check characters by sampling.codes, with a
# message a sampler can act on; the schema only bounds their size.
Code = Annotated[str, Meta(min_length=1, max_length=40, description="a scanned or typed code")]
RoundId = Annotated[
    str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="round id: a-z, 0-9, -")
]
Ident = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")]
# Printable ASCII only: an op id goes into the journal and the audit trail as it is,
# so NUL, CR, LF and other control characters never reach them.
OpId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[!-~][ -~]*$",
        description="client-chosen id, unique per device: printable ASCII",
    ),
]
Seq = Annotated[
    int, Meta(ge=1, le=1_000_000, description="the device's operation counter in this round")
]
Capacity = Annotated[int, Meta(description="pool size: 1, 5, 10 or 20")]
Text = Annotated[str, Meta(max_length=200)]
#: Rows in one bulk registration call (sites, devices): one atomic script call each,
#: a few milliseconds of the server's time, an answer well inside the body limit.
BULK_MAX = 5_000
