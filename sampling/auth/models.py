"""Device and role types."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from sampling.schema import BULK_MAX, Base, Ident, OpId, Text

Role = Literal["scanner", "sealer", "courier", "lab", "admin", "grid", "viewer", "registrar"]
ROLES: tuple[Role, ...] = (
    "scanner", "sealer", "courier", "lab", "admin", "grid", "viewer", "registrar",
)  # fmt: skip


class Device(Base, frozen=True):
    """A registered device. ``digest`` is SHA-256 of its token; the token itself is
    shown once, when the device is created, and never stored."""

    id: str
    role: Role
    site: str = ""
    lab: str = ""
    grid: str = ""
    #: A lab device that may resolve its lab's held (conflicting) results.
    supervisor: bool = False
    digest: str = ""
    created_at: float = 0.0
    #: Unix time after which the token stops working; 0 = no expiry.
    expires_at: float = 0.0
    revoked: bool = False
    #: A registrar's communities: the only ones its register uploads may change.
    communities: tuple[str, ...] = ()

    def public(self) -> DeviceView:
        return DeviceView(
            id=self.id,
            role=self.role,
            site=self.site,
            lab=self.lab,
            grid=self.grid,
            supervisor=self.supervisor,
            created_at=self.created_at,
            expires_at=self.expires_at,
            revoked=self.revoked,
            communities=list(self.communities),
        )


class DeviceIn(Base, frozen=True):
    id: Ident
    role: Role
    site: Text = ""
    lab: Text = ""
    grid: Text = ""
    #: Lab devices only: may resolve the lab's held results (``sampling.lab.review``).
    supervisor: bool = False
    #: Seconds until the token expires; omitted: no expiry.
    expires_in: int | None = None
    #: Registrar devices only: the communities whose register it uploads.
    communities: list[Text] = []


class DeviceView(Base, frozen=True):
    id: str
    role: Role
    site: str
    lab: str
    grid: str
    created_at: float
    expires_at: float
    revoked: bool
    supervisor: bool = False
    communities: list[str] = []


class DeviceCreated(Base, frozen=True):
    device: DeviceView
    #: Shown once: store it on the device now.
    token: str


class DevicesIn(Base, frozen=True):
    """Devices registered in one call, all or none. ``op`` is the call's id: the
    tokens are derived from it (and the server's secret), so a retry with the same
    ``op`` and rows gets the same tokens back, and nothing is written twice."""

    op: OpId
    devices: Annotated[list[DeviceIn], Meta(min_length=1, max_length=BULK_MAX)]


class DevicesCreated(Base, frozen=True):
    #: Rows registered by this call, and rows a previous call with this op registered.
    created: int
    unchanged: int
    #: Every row, in the order given, with its token: store them on the devices now.
    devices: list[DeviceCreated]
