"""Boxing and chain of custody: boxes, sealing, handover, pick-up, lab intake, alarms.

:class:`Boxer` is the one object the routes, the CLI and the live figures hold. It
does no work of its own: each operation is the method of the part that does that
kind of work, under the same name.

- :mod:`~sampling.boxing.commands`: the custody steps, each one ``custody.lua`` call;
- :mod:`~sampling.boxing.reads`: a box, its manifest, its discrepancies;
- :mod:`~sampling.boxing.timelines`: a box's or a tube's custody timeline;
- :mod:`~sampling.boxing.overdue`: the overdue index and a courier's boxes;
- :mod:`~sampling.boxing.access`: who may do and read what.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampling.boxing import access
from sampling.boxing.commands import Commands
from sampling.boxing.overdue import OverdueIndex
from sampling.boxing.reads import BoxReads
from sampling.boxing.timelines import Timelines
from sampling.store.scripts import Runner

if TYPE_CHECKING:
    from sampling.boxing.config import BoxingConfig
    from sampling.store.client import AnyRedis
    from sampling.store.lane import Lane


class Boxer:
    def __init__(
        self,
        redis: AnyRedis,
        config: BoxingConfig,
        *,
        waitaof: bool = False,
        lane: Lane | None = None,
    ) -> None:
        self.config = config
        # Box adds and intake scans come a tube at a time, as scans do: the same
        # multiplexed connection, when there is one.
        run = Runner(redis, waitaof=waitaof, lane=lane)
        commands = Commands(redis, run, config)
        reads = BoxReads(redis)
        due = OverdueIndex(redis, run, reads, config)

        # The custody steps: the device, the round and the box, then named arguments.
        self.open = commands.open
        self.add = commands.add
        self.remove = commands.remove
        self.seal = commands.seal
        self.handover = commands.handover
        self.pickup = commands.pickup
        self.receive = commands.receive
        self.intake = commands.intake
        self.close_intake = commands.close_intake
        # Reads.
        self.box = reads.box
        self.manifest = reads.manifest
        self.discrepancies = reads.discrepancies
        self.timeline = Timelines(redis, reads).timeline
        # The overdue index.
        self.refresh_unboxed = due.refresh_unboxed
        self.overdue = due.overdue
        self.courier_boxes = due.courier_boxes
        # Who may read what.
        self.may_read = access.may_read
        # The runner's own clients (a cluster node's, for WAITAOF); not ``redis``.
        self.aclose = run.aclose
