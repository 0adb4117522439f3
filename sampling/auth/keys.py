"""Redis keys of the auth package.

Both share the registry's tag ``{sampling}`` with the admin journal
``{sampling}:admin``, so creating or revoking a device and journaling it is one
script (``sampling/admin.lua``; see ``binding/keys.py`` for the journals).

=========================  ====  ===============================================
``{sampling}:devices``     HASH  device id -> msgpack ``Device`` (token digest only)
``{sampling}:revoked``     SET   revoked device ids; copied into each round as
                                 ``{rd:R}:revoked`` so binding scripts refuse a
                                 revoked device in the same atomic step
=========================  ====  ===============================================

``sampling:pair:{sampling}:<h>`` (STRING, 10-minute TTL): the device id a
one-time pairing code stands for, ``h`` the code's SHA-256. The hash tag puts it
in the slot of ``{sampling}:devices``, which pair.lua writes in the same step.
"""

DEVICES = "{sampling}:devices"
REVOKED = "{sampling}:revoked"


def pairing(code_hash: str) -> str:
    # The registry's hash tag puts the code in its slot: pair.lua touches both.
    return "sampling:pair:{sampling}:" + code_hash
