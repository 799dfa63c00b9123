"""Start a private Redis Cluster of N masters on this machine: tests and ``bench/`` run the broker
on a real cluster (docs/scaling.md) without Docker or a pre-started server.

Each node is an ``EmbeddedRedis`` with ``--cluster-enabled yes`` in a folder of its own; the
starter assigns the 16,384 slots in N even ranges (node i gets range i, as ``redis-cli --cluster
create`` would), introduces the nodes with ``CLUSTER MEET`` and waits until every node reports
``cluster_state:ok`` and agrees on the slot map. No replicas: a test that needs failover uses
Sentinel (docs/high-availability.md). Stopped by the pids we started, never by name.
"""

from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import redis

from anygate.ops.embedded_redis import AppendFsync, EmbeddedRedis, EmbeddedRedisError

SLOTS = 16384
BUS_OFFSET = 10000
"""A node's cluster bus listens on its port + 10,000 (Redis 6.2 has no ``cluster-port``)."""


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_node_port() -> int:
    """A free port whose bus port (+10,000) is free too, so below 55,536."""
    for _ in range(200):
        port = random.randint(20000, 55535)  # noqa: S311 - a port, not a secret
        if _is_free(port) and _is_free(port + BUS_OFFSET):
            return port
    raise EmbeddedRedisError("no free port pair for a cluster node")


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """N contiguous, inclusive ranges covering every slot, the last one taking the remainder."""
    if masters < 1:
        raise ValueError("a cluster needs at least one master")
    size = SLOTS // masters
    return [
        (i * size, SLOTS - 1 if i == masters - 1 else (i + 1) * size - 1) for i in range(masters)
    ]


@dataclass
class LocalRedisCluster:
    """``with LocalRedisCluster(tmp, masters=3) as c: c.url`` — ``url`` is one seed node; a
    cluster client discovers the rest from it."""

    data_dir: Path
    masters: int = 3
    aof: bool = True
    appendfsync: AppendFsync = "everysec"
    nodes: list[EmbeddedRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 30.0) -> LocalRedisCluster:
        try:
            for i in range(self.masters):
                node = EmbeddedRedis(
                    self.data_dir / f"node{i}",
                    port=cluster_node_port(),
                    aof=self.aof,
                    appendfsync=self.appendfsync,
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(self.data_dir / f"node{i}" / "nodes.conf"),
                        "--cluster-node-timeout",
                        "5000",
                    ),
                )
                self.nodes.append(node.start())
            self._form(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self, timeout: float) -> None:
        clients = [redis.Redis(port=n.port, decode_responses=True) for n in self.nodes]
        try:
            for client, (low, high) in zip(clients, slot_ranges(self.masters), strict=True):
                client.execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER ADDSLOTS", *range(low, high + 1)
                )
            for client in clients[1:]:
                client.execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER MEET", "127.0.0.1", self.nodes[0].port
                )
            deadline = time.monotonic() + timeout
            while not self._formed(clients):
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError("the local Redis Cluster did not reach state ok")
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def _formed(self, clients: list[redis.Redis]) -> bool:
        for client in clients:
            info = client.execute_command(  # type: ignore[no-untyped-call]
                "CLUSTER INFO"
            )
            if (
                info.get("cluster_state") != "ok"
                or int(info["cluster_known_nodes"]) != self.masters
            ):
                return False
        return True

    def node_of_slot(self, slot: int) -> EmbeddedRedis:
        for node, (low, high) in zip(self.nodes, slot_ranges(self.masters), strict=True):
            if low <= slot <= high:
                return node
        raise ValueError(f"slot {slot} out of range")

    def stop(self, *, hard: bool = False) -> None:
        for node in self.nodes:
            node.stop(hard=hard)

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
