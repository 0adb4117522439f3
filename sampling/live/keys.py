"""Redis keys of the live package (the round's own counters are the domains' keys).

=============================  ======  =============================================
``sampling:archiver:lease``    STRING  the archiver leader's id, with a PX expiry;
                                       one leader across every worker and host
=============================  ======  =============================================
"""

from __future__ import annotations

LEASE = "sampling:archiver:lease"
