"""Redis keys of the auth package.

=========================  ====  ===============================================
``sampling:devices``       HASH  device id -> msgpack ``Device`` (token digest only)
``sampling:revoked``       SET   revoked device ids; copied into each round as
                                 ``{rd:R}:revoked`` so binding scripts refuse a
                                 revoked device in the same atomic step
=========================  ====  ===============================================
"""

DEVICES = "sampling:devices"
REVOKED = "sampling:revoked"
