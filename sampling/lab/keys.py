"""Every Redis key of the lab package, built in one place.

All of them carry the round's hash tag (``sampling.binding.keys.tag``), so a
result, the tube record it is checked against and the journal entry it writes
are one single-slot script on a single Redis or a Cluster.

=============================  ======  =============================================
``{rd:R}:result``              HASH    tube code -> packed result
                                       ``outcome|ct_orf1ab|ct_n|lab|tested_at_ms``
``{rd:R}:review``              HASH    ``<tube>|<packed>`` -> received at (ms): a
                                       second result for a tube that disagrees with
                                       the stored one, held for a person to decide
``{rd:R}:orphans``             HASH    tube code -> packed result, for tubes that no
                                       one bound in this round
``{rd:R}:labcount``            HASH    counters: stored, duplicate, held, orphan;
                                       outcome:<outcome> (stored results);
                                       resample_ordered (residents of positive or
                                       invalid pools), resample_resulted;
                                       resolved_keep, resolved_held, resolved_retest
``{rd:R}:positive``            HASH    positive pool tube -> ``residents:ms``
``{rd:R}:due:result``          ZSET    boxing's index of tubes awaiting a result
``{rd:R}:door``                HASH    resident hash (8 bytes) -> what a grid team
                                       found at the door: ``outcome|at_ms|device|tube``
``{rd:R}:doorcount``           HASH    door outcome -> residents recorded with it
``{rd:R}:doorops``             HASH    ``<device>|<op>`` -> payload fingerprint
``{rd:R}:mllp``                HASH    ``<device>|<MSH-10>`` -> ``<ack code>|<text>``:
                                       the answer to each MLLP message, so a
                                       retransmission is answered again, stored once
``{rd:R}:t:<tube>``            STRING  the binding core's tube record (read only)
``{rd:R}:meta``                HASH    the binding core's round state (read only)
``{rd:R}:journal``             STREAM  shared with the binding core
=============================  ======  =============================================
"""

from __future__ import annotations

from sampling.binding import keys as binding_keys
from sampling.binding.keys import journal, meta, tube
from sampling.boxing.keys import awaiting_result

__all__ = [
    "awaiting_result",
    "count",
    "door",
    "door_count",
    "door_ops",
    "journal",
    "meta",
    "mllp",
    "orphans",
    "positives",
    "result",
    "review",
    "tube",
]


def result(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":result"


def review(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":review"


def orphans(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":orphans"


def count(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":labcount"


def door(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":door"


def door_count(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":doorcount"


def door_ops(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":doorops"


def mllp(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":mllp"


def positives(round_id: str) -> str:
    return binding_keys.tag(round_id) + ":positive"
