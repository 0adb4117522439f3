"""A throwaway 3-master Redis Cluster on loopback, from the embedded valkey-server binary."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from sampling.store.embedded import EmbeddedServer, cli_binary, free_port


class Cluster:
    """Three masters, no replicas, each with AOF in its own directory.

    Each node's cluster bus gets its own free port (``cluster-port``): the
    default, port + 10000, may be taken or past 65535.
    """

    def __init__(self, root: Path, masters: int = 3) -> None:
        self.nodes = [
            EmbeddedServer(
                root / f"n{i}",
                port=free_port(),
                extra={
                    "cluster-enabled": "yes",
                    "cluster-config-file": "nodes.conf",
                    "cluster-port": str(free_port()),
                    "cluster-node-timeout": "3000",
                },
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def url_away_from(self, key: str) -> str:
        """The URL of a node that does not own ``key``'s slot: a client that ignores the
        cluster setting, seeded there, meets MOVED on that key instead of passing by luck."""
        with redis.Redis(port=self.nodes[0].port) as r:
            slot = r.execute_command("CLUSTER", "KEYSLOT", key)
            owner = next(
                primary[1]
                for start, end, primary, *_ in r.execute_command("CLUSTER", "SLOTS")
                if start <= slot <= end
            )
        return next(n.url for n in self.nodes if n.port != owner)

    @property
    def addrs(self) -> list[str]:
        return [f"127.0.0.1:{n.port}" for n in self.nodes]

    def start(self, timeout: float = 30.0) -> Self:
        try:
            for n in self.nodes:
                n.start()
            subprocess.run(
                [str(cli_binary()), "--cluster", "create", *self.addrs, "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=timeout,
            )
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(n) for n in self.nodes):
                return
            time.sleep(0.1)
        raise TimeoutError("the cluster did not reach cluster_state:ok")

    @staticmethod
    def _ok(node: EmbeddedServer) -> bool:
        with redis.Redis(port=node.port) as r:
            info = r.execute_command("CLUSTER", "INFO").decode()
            slots = r.execute_command("CLUSTER", "SLOTS")
        return "cluster_state:ok" in info and len(slots) >= 3

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
