"""A Redis master, its replicas and three sentinels on free ports in a temp dir, for tests.

Every node runs the persistence strict durability requires (``appendonly yes``, ``appendfsync
always``), so that whichever one a failover promotes passes the gateway's check. The sentinels
decide fast (``down_after_ms``, ``failover_timeout_ms``): a failover takes a few seconds.
Each process is ours alone: started in its own session and stopped by its pid, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml
from redis.sentinel import Sentinel

from anygate.ops.embedded_redis import find_redis_server
from tests.support.processes import free_port
from tests.support.stack import Stack

MASTER_NAME = "anygate-test"


@dataclass(frozen=True)
class TLSFiles:
    """PEM files: the CA every node and client trusts, and one certificate (with its key) that
    the nodes serve and the clients present (trustme's certificates allow both uses)."""

    ca: Path
    cert: Path
    key: Path


class SentinelSetError(RuntimeError):
    pass


@dataclass
class Node:
    """One redis-server (data node or sentinel) we started."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    tls: dict[str, Any] = field(default_factory=dict)
    """redis-py's ``ssl*`` options when the node listens on TLS only."""

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=2, **self.tls, **options
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """``kill -9``: a crash, with no chance to hand over."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if not self.alive():
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class SentinelSet:
    root: Path
    replicas: int = 2
    sentinels: int = 3
    down_after_ms: int = 1000
    failover_timeout_ms: int = 4000
    extra_args: tuple[str, ...] = ()
    """Added to every data node's command line."""
    tls: TLSFiles | None = None
    """Every node (data nodes and sentinels) on TLS only, replication too, client certificates
    required."""
    binary: str = field(default_factory=find_redis_server)
    master: Node | None = None
    replica_nodes: list[Node] = field(default_factory=list)
    sentinel_nodes: list[Node] = field(default_factory=list)

    @property
    def data_nodes(self) -> list[Node]:
        return [n for n in [self.master, *self.replica_nodes] if n is not None]

    @property
    def sentinel_addresses(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.sentinel_nodes]

    def redis_section(self, namespace: str, **settings: Any) -> dict[str, Any]:
        """The ``redis`` section of a gateway's config that reaches this set through Sentinel."""
        section: dict[str, Any] = {
            "mode": "sentinel",
            "namespace": namespace,
            "sentinel": {"master_name": MASTER_NAME, "nodes": self.sentinel_addresses},
        }
        if self.tls is not None:
            section["sentinel"]["tls"] = True
            section["tls"] = {
                "ca_file": str(self.tls.ca),
                "cert_file": str(self.tls.cert),
                "key_file": str(self.tls.key),
            }
        return {**section, **settings}

    def start(self, timeout: float = 30.0) -> SentinelSet:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.master = self._data_node("master", free_port(), ())
            for i in range(self.replicas):
                self.replica_nodes.append(
                    self._data_node(
                        f"replica{i}",
                        free_port(),
                        ("--replicaof", "127.0.0.1", str(self.master.port)),
                    )
                )
            for i in range(self.sentinels):
                self.sentinel_nodes.append(self._sentinel(f"sentinel{i}", free_port()))
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, port: int, args: list[str]) -> Node:
        log_path = self.root / f"{name}.log"
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        return Node(name, port, process, log_path, self.client_tls())

    def client_tls(self) -> dict[str, Any]:
        """redis-py's options for a client of these nodes (empty without TLS)."""
        if self.tls is None:
            return {}
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.tls.ca),
            "ssl_certfile": str(self.tls.cert),
            "ssl_keyfile": str(self.tls.key),
        }

    def _tls_settings(self, port: int) -> list[tuple[str, str]]:
        """(directive, value) pairs that put a node on TLS only, on ``port``."""
        if self.tls is None:
            return [("port", str(port))]
        return [
            ("port", "0"),
            ("tls-port", str(port)),
            ("tls-cert-file", str(self.tls.cert)),
            ("tls-key-file", str(self.tls.key)),
            ("tls-ca-cert-file", str(self.tls.ca)),
            ("tls-replication", "yes"),
            ("tls-auth-clients", "yes"),
        ]

    def _data_node(self, name: str, port: int, extra: tuple[str, ...]) -> Node:
        data_dir = self.root / name
        data_dir.mkdir(exist_ok=True)
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            *(arg for name, value in self._tls_settings(port) for arg in (f"--{name}", value)),
            "--dir", str(data_dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--logfile", str(self.root / f"{name}.log"),
            *extra,
            *self.extra_args,
        ]  # fmt: skip
        return self._spawn(name, port, args)

    def _sentinel(self, name: str, port: int) -> Node:
        assert self.master is not None
        conf = self.root / f"{name}.conf"
        conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    *(f"{name} {value}" for name, value in self._tls_settings(port)),
                    "daemonize no",
                    f"dir {self.root}",
                    f"logfile {self.root / f'{name}.log'}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}",
                    f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    # known at once, not after the 10 s until a sentinel's first INFO poll
                    *(
                        f"sentinel known-replica {MASTER_NAME} 127.0.0.1 {replica.port}"
                        for replica in self.replica_nodes
                    ),
                    "",
                ]
            ),
            encoding="utf-8",
        )
        return self._spawn(name, port, [self.binary, str(conf), "--sentinel"])

    def _wait_ready(self, timeout: float) -> None:
        """Until every replica is in sync and every sentinel sees the master, its replicas and
        the other sentinels (a failover before that could not elect anyone)."""
        deadline = time.monotonic() + timeout
        problem = "not checked yet"
        while time.monotonic() < deadline:
            problem = self._not_ready()
            if not problem:
                return
            for node in [*self.data_nodes, *self.sentinel_nodes]:
                if not node.alive():
                    raise SentinelSetError(f"{node.name} exited:\n{node.log_tail()}")
            time.sleep(0.1)
        raise SentinelSetError(f"the sentinel set did not get ready in {timeout:g} s: {problem}")

    def _not_ready(self) -> str:
        try:
            for node in self.replica_nodes:
                with node.client(decode_responses=True) as client:
                    if client.info("replication").get("master_link_status") != "up":
                        return f"{node.name} not in sync"
            for node in self.sentinel_nodes:
                with node.client(decode_responses=True) as client:
                    state = client.sentinel_master(MASTER_NAME)
                    if int(state["num-slaves"]) < self.replicas:
                        return f"{node.name} sees {state['num-slaves']} replicas"
                    if int(state["num-other-sentinels"]) < self.sentinels - 1:
                        return f"{node.name} sees {state['num-other-sentinels']} other sentinels"
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return ""

    def master_address(self) -> tuple[str, int]:
        """What the sentinels say now."""
        sentinel = self._sentinel_client()
        address = sentinel.discover_master(MASTER_NAME)
        for client in sentinel.sentinels:
            client.close()
        return str(address[0]), int(address[1])

    def master_client(self) -> redis.Redis:
        """A client of whichever node is master when each connection opens."""
        client: redis.Redis = self._sentinel_client().master_for(
            MASTER_NAME, socket_timeout=2, decode_responses=True, **self.client_tls()
        )
        return client

    def _sentinel_client(self) -> Sentinel:
        return Sentinel(
            [("127.0.0.1", n.port) for n in self.sentinel_nodes],
            sentinel_kwargs={"socket_timeout": 1, **self.client_tls()},
        )

    def wait_for_new_master(self, old_port: int, timeout: float = 30.0) -> Node:
        """The replica the sentinels promoted once ``old_port``'s master went away."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                _, port = self.master_address()
                if port != old_port:
                    return next(n for n in self.replica_nodes if n.port == port)
            time.sleep(0.1)
        logs = "\n".join(n.log_tail(10) for n in self.sentinel_nodes)
        raise SentinelSetError(f"no failover within {timeout:g} s; sentinels said:\n{logs}")

    def stop(self) -> None:
        for node in [*self.sentinel_nodes, *self.data_nodes]:
            node.stop()


@contextlib.contextmanager
def sentinel_set(root: Path, **options: Any) -> Iterator[SentinelSet]:
    nodes = SentinelSet(root, **options)
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


class SentinelStack(Stack):
    """A ``Stack`` whose processes reach Redis through the sentinels (``tree``'s ``redis``
    section, from ``SentinelSet.redis_section``); the test's own admin client follows the
    master the same way."""

    def __init__(self, tmp_path: Path, tree: dict[str, Any], nodes: SentinelSet) -> None:
        # Stack opens its admin client on redis.url; give it the master's, then replace it
        host, port = nodes.master_address()
        super().__init__(
            tmp_path, {**tree, "redis": {**tree["redis"], "url": f"redis://{host}:{port}/0"}}
        )
        self.tree = tree
        self.config_path.write_text(yaml.safe_dump(tree), encoding="utf-8")
        self._redis.close()
        self._redis = nodes.master_client()
