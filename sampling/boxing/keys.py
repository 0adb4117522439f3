"""Every Redis key of boxing and custody, built in one place.

Boxing lives in the round's hash slot (``{rd:R}``, see ``sampling.binding.keys``),
so one script can read and flip a tube record, write the box, the op record and
the journal entry in one atomic step. Why that is enough room, with the numbers:
the 4.4-million round has about 440,000 tubes and 4,400 boxes of 100 tubes; a
box costs about 100 bytes of fields plus ~25 bytes per tube in its manifest, and
each tube ~30 bytes in the tube-to-box map: about 30 MB for the round, beside
the ~230 MB of bindings.

Box codes are used once ever: a claim hash outside the round's slot names the
round that holds each box code (the same claim step as tubes, ``claim.lua``).

Keys (``R`` = round id, ``B`` = box code, ``nnn`` = 3 serial digits):

===============================  ======  =============================================
``sampling:boxes:<nnn>``         HASH    box code -> round id (ever-opened claims)
``{rd:R}:b:<B>``                 HASH    the box: ``state`` (open, sealed, picked_up,
                                         received, intake_closed), ``site``, ``lab``,
                                         ``cap``, ``n`` (samples in it), and who/when/
                                         where of each custody step (times in ms)
``{rd:R}:bt:<B>``                HASH    the box's tubes: tube -> ``residents:boxed_ms``
``{rd:R}:tbox:<nnn>``            HASH    tube -> the box it is in (one box per tube)
``{rd:R}:in:<B>``                HASH    lab intake: tube -> ``condition:ms:where:residents``
``{rd:R}:lost``                  HASH    tube -> intake condition (``missing``,
                                         ``damaged``, ``leaking``): read by the binding
                                         core to allow a re-sample's next attempt
``{rd:R}:due:unboxed``           ZSET    closed tubes not in a box, scored closed-at ms
``{rd:R}:due:sealed``            ZSET    sealed boxes not picked up, scored sealed-at ms
``{rd:R}:due:transit``           ZSET    boxes picked up, not received, scored by pick-up
``{rd:R}:due:intake``            ZSET    boxes received, intake open, scored by arrival
``{rd:R}:due:open``              ZSET    tubes still open, scored opened-at ms
``{rd:R}:due:cursor``            STRING  last journal id folded into ``due:unboxed``
                                         and ``due:open``
``{rd:R}:due:result``            ZSET    tubes scanned at lab intake without a result
                                         yet, scored by intake ms (``lab/record.lua``
                                         removes a tube when its result is stored)
``{rd:R}:boxalarm``              HASH    ``seal|<B>`` -> ``code:ms`` (last seal refusal of
                                         a box not sealed since); ``intake|<B>`` ->
                                         ``missing:extra:damaged:ms`` (a discrepant intake)
``{rd:R}:boxcount``              HASH    counters: boxes_opened, sealed, ..., refused:<code>;
                                         tubes_boxed (in a box), tubes_sealed,
                                         tubes_picked_up, tubes_received (tubes in
                                         boxes that reached each custody step)
===============================  ======  =============================================

The op record ``{rd:R}:ops:<device>`` and the journal ``{rd:R}:journal`` are the
binding core's (``sampling.oplog``): one device counter covers all its ops.
1,000 tube-to-box buckets keep each a listpack (440 fields at 440,000 tubes).
"""

from __future__ import annotations

from sampling.binding.keys import (
    devices_gap,
    devices_seen,
    devices_site,
    journal,
    meta,
    oplog,
    revoked,
    tag,
    tube,
)

__all__ = [
    "activity",
    "alarms",
    "awaiting_result",
    "box",
    "box_claim",
    "box_tubes",
    "count",
    "devices_gap",
    "devices_seen",
    "devices_site",
    "due",
    "due_cursor",
    "intake",
    "journal",
    "lost",
    "meta",
    "oplog",
    "revoked",
    "tube",
    "tube_box",
]

DUE = ("unboxed", "sealed", "transit", "intake")


def box_claim(box_code: str) -> str:
    return f"sampling:boxes:{box_code[-4:-1]}"


def box(round_id: str, box_code: str) -> str:
    return f"{tag(round_id)}:b:{box_code}"


def box_tubes(round_id: str, box_code: str) -> str:
    return f"{tag(round_id)}:bt:{box_code}"


def tube_box(round_id: str, tube_code: str) -> str:
    return f"{tag(round_id)}:tbox:{tube_code[-4:-1]}"


def intake(round_id: str, box_code: str) -> str:
    return f"{tag(round_id)}:in:{box_code}"


def lost(round_id: str) -> str:
    return f"{tag(round_id)}:lost"


def due(round_id: str, which: str) -> str:
    return f"{tag(round_id)}:due:{which}"


def due_cursor(round_id: str) -> str:
    return f"{tag(round_id)}:due:cursor"


def count(round_id: str) -> str:
    return f"{tag(round_id)}:boxcount"


def awaiting_result(round_id: str) -> str:
    return f"{tag(round_id)}:due:result"


def alarms(round_id: str) -> str:
    return f"{tag(round_id)}:boxalarm"


def activity(round_id: str) -> list[str]:
    """The keys ``custody.lua`` takes as KEYS[15..19], after the box counters."""
    return [
        devices_seen(round_id),
        devices_site(round_id),
        devices_gap(round_id),
        alarms(round_id),
        awaiting_result(round_id),
    ]
