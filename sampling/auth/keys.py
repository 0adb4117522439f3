"""Redis keys of the auth package.

=========================  ====  ===============================================
``sampling:devices``       HASH  device id -> msgpack ``Device`` (token digest only)
``sampling:revoked``       SET   revoked device ids; copied into each round as
                                 ``{rd:R}:revoked`` so binding scripts refuse a
                                 revoked device in the same atomic step
=========================  ====  ===============================================

``sampling:pair:{sampling:devices}:<h>`` (STRING, 10-minute TTL): the device id a
one-time pairing code stands for, ``h`` the code's SHA-256. The hash tag puts
it in the slot of ``sampling:devices``, which pair.lua writes in the same step.
"""

DEVICES = "sampling:devices"
REVOKED = "sampling:revoked"


def pairing(code_hash: str) -> str:
    # The hash tag puts the code in the registry's slot: pair.lua touches both.
    return "sampling:pair:{" + DEVICES + "}:" + code_hash
