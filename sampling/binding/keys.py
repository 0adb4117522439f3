"""Every Redis key of the binding core, built in one place.

A round's keys share the hash tag ``{rd:<round>}``, so one round lives in one
hash slot and every binding step is a single-slot script on a single Redis or on
Redis Cluster. Why one slot per round, with the numbers:

* Size: a binding costs about 50 bytes once its journal is archived
  (``sampling bench binding`` measures it), so the 4.4-million-person round
  is about 230 MB and a 12.6-million city round about 650 MB: one node holds it.
* Rate: the 4.4 M round in a 12-hour day is ~100 scans/s on average and a few
  thousand per second at the 9 a.m. surge; one Valkey core runs this script
  at more than 50,000 scans/s (offline batches of 100, measured by the bench).
* Rules: "a resident is bound once per round" is then a single atomic check;
  sharding a round over slots would need a claim step for every scan.
Different rounds (districts, days) land on different slots and so spread over
a cluster's masters.

The one cross-round rule, "a tube barcode is opened once, ever", uses a claim
hash outside the round's slot (``tube_claim``), written before the round's
open step only for an open that step will accept, and released after it when the
step refused the open after all (``settle.lua``; docs/binding.md says how); a
claim names its round, so a retried open in the same round passes.

The registry (rounds, sites, and auth's devices and revoked set) and the admin
journal share the tag ``{sampling}``: one small slot, so a registry write and its
admin journal entry are one script (``sampling/admin.lua``).

Journals. Every change a device makes is journaled in its round's
``{rd:R}:journal``. Admin changes (round create and close, sites, devices, risk
flags, register imports) go to ``{sampling}:admin``, one stream for the whole
installation, each with who, when, what and a reason where it is a correction
(``sampling/adminlog.py``); those about one round (``round_create``,
``round_close``, ``risk``) are also journaled in that round's stream in the same
atomic step as the change, so a round's archive holds its whole story.
Creating a round touches two slots (the round's, the registry's): its state,
revoked copy and journal entry are one script in the round's slot, and
``Rounds.create`` says why a revocation made at the same moment still reaches it.

Keys (``R`` = round id, ``hhhh`` = 4 hex digits of the resident's keyed hash):

=============================  ======  =============================================
``{sampling}:rounds``          HASH    round id -> msgpack ``Round`` (the list; the
                                       round's own ``meta`` holds its truth)
``{sampling}:sites``           HASH    site id -> msgpack ``Site``
``{sampling}:admin``           STREAM  every admin change (``adminlog.py``)
``sampling:tubes:<nnn>``       HASH    tube code -> round id (ever-opened claims);
                                       ``p:<tube>`` -> nonce while a claim is pending
``{rd:R}:meta``                HASH    ``state`` (open/closed), ``pool``, ``round``
                                       (msgpack ``Round``), ``register`` (the register
                                       version its risk flags were last derived from)
``{rd:R}:count``               HASH    counters: bound, tubes_opened, refused:<code>
``{rd:R}:res:<hhhh>``          HASH    6-byte hash tail -> tube serial (int); the
                                       field prefixed ``r`` holds a re-sample binding
``{rd:R}:risk:<hh>``           HASH    7-byte hash tail -> flags (``Y``/``R``/``I``),
                                       the union of ``m``+tail (set by hand) and
                                       ``d``+tail (derived from the register)
``{rd:R}:t:<tube>``            STRING  packed tube record (``tube.py``)
``{rd:R}:ops:<device>``        STRING  8 bytes per device sequence number (``oplog.py``)
``{rd:R}:revoked``             SET     copy of ``{sampling}:revoked`` (auth/keys.py)
``{rd:R}:journal``             STREAM  every accepted change, drained by the archiver
``{rd:R}:archive``             HASH    archiver cursor: last archived stream id, parts
``{rd:R}:archive:lock``        STRING  holder of the round's drain (one drain at a time)
``{rd:R}:spm``                 HASH    minute (epoch s) -> scans accepted in it
``{rd:R}:dev:seen``            ZSET    device -> last operation, ms (any kind)
``{rd:R}:dev:site``            HASH    device -> its site (or lab) at its last operation
``{rd:R}:dev:gap``             HASH    device -> sequence numbers below its highest
                                       that never arrived (field gone at 0)
=============================  ======  =============================================

The last four are kept by ``apply.lua`` and ``boxing/custody.lua`` in the same
step as the operation, for the live figures (``sampling.live``).

65,536 resident buckets keep each bucket a listpack (15 fields at 1 M bindings,
67 at 4.4 M; the listpack limit is 128 by default, 512 on our embedded server).
"""

from __future__ import annotations

ROUNDS = "{sampling}:rounds"
SITES = "{sampling}:sites"


def tag(round_id: str) -> str:
    return "{rd:" + round_id + "}"


def meta(round_id: str) -> str:
    return tag(round_id) + ":meta"


def count(round_id: str) -> str:
    return tag(round_id) + ":count"


def journal(round_id: str) -> str:
    return tag(round_id) + ":journal"


def archive(round_id: str) -> str:
    return tag(round_id) + ":archive"


def archive_lock(round_id: str) -> str:
    return tag(round_id) + ":archive:lock"


def revoked(round_id: str) -> str:
    return tag(round_id) + ":revoked"


def resident_bucket(round_id: str, rhash: bytes) -> str:
    return f"{tag(round_id)}:res:{rhash[:2].hex()}"


def risk_bucket(round_id: str, rhash: bytes) -> str:
    return f"{tag(round_id)}:risk:{rhash[:1].hex()}"


def risk_buckets(round_id: str) -> list[str]:
    """All 256 risk buckets of a round, in order of the hash's first byte."""
    return [f"{tag(round_id)}:risk:{b:02x}" for b in range(256)]


def tube(round_id: str, tube_code: str) -> str:
    return f"{tag(round_id)}:t:{tube_code}"


def oplog(round_id: str, device_id: str) -> str:
    return f"{tag(round_id)}:ops:{device_id}"


def tube_claim(tube_code: str) -> str:
    # The last three serial digits spread claims over 1,000 small hashes.
    return f"sampling:tubes:{tube_code[-4:-1]}"


def scans_per_minute(round_id: str) -> str:
    return tag(round_id) + ":spm"


def devices_seen(round_id: str) -> str:
    return tag(round_id) + ":dev:seen"


def devices_site(round_id: str) -> str:
    return tag(round_id) + ":dev:site"


def devices_gap(round_id: str) -> str:
    return tag(round_id) + ":dev:gap"


def activity(round_id: str) -> list[str]:
    """The keys ``apply.lua`` takes as KEYS[6..9]: scans per minute, device activity."""
    return [
        scans_per_minute(round_id),
        devices_seen(round_id),
        devices_site(round_id),
        devices_gap(round_id),
    ]
