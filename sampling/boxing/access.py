"""Who may do what with a box: the role each custody step needs, and who may read a box."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampling.errors import Forbidden

if TYPE_CHECKING:
    from sampling.auth.models import Device
    from sampling.boxing.models import Box

#: Which role performs each kind of operation.
ROLE = {
    "open": "sealer",
    "add": "sealer",
    "remove": "sealer",
    "seal": "sealer",
    "handover": "sealer",
    "pickup": "courier",
    "receive": "lab",
    "intake": "lab",
    "intake_close": "lab",
}


def require_role(device: Device, kind: str) -> None:
    """Refuse a device whose role does not perform steps of this ``kind``."""
    if device.role != ROLE[kind]:
        raise Forbidden(
            f"a {device.role} device cannot {kind.replace('_', ' ')} boxes; "
            f"that is the {ROLE[kind]}'s step",
            role=device.role,
        )


def may_read(device: Device, box: Box) -> None:
    """Sealers read their site's boxes, couriers the boxes handed to them (or not
    yet handed to anyone: the manifest is the pick-up paperwork), labs the boxes
    addressed to them."""
    if device.role == "courier" and box.courier not in (None, "", device.id):
        raise Forbidden("this box was not handed to this courier", box=box.box)
    if device.role == "sealer" and box.site != device.site:
        raise Forbidden("this box belongs to another site", box=box.box)
    if device.role == "lab" and box.lab != device.lab:
        raise Forbidden("this box is addressed to another lab", box=box.box)
