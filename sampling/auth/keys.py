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
"""

DEVICES = "{sampling}:devices"
REVOKED = "{sampling}:revoked"
