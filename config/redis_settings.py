"""How every process reaches Redis: standalone, Sentinel or Cluster, TLS, timeouts and the
durability the gateway promises (docs/high-availability.md, docs/durability.md)."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from anygate.config.base import StrictModel
from anygate.config.secrets import SecretRef


def _host_port(raw: str) -> str:
    """``host:port`` (an IPv6 host in brackets: ``[::1]:26379``)."""
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, not {raw!r}")
    return raw


class RedisTLSConfig(StrictModel):
    """TLS to Redis (``rediss://``, or the data nodes behind Sentinel): which CA to trust and,
    for a server that requires client certificates, ours (docs/high-availability.md)."""

    ca_file: str | None = None
    """PEM bundle of the CA(s) that signed the server's certificate; unset: the system's."""
    cert_file: str | None = None
    """Client certificate (PEM), for a server run with ``tls-auth-clients yes``."""
    key_file: str | None = None
    """The client certificate's private key (PEM, unencrypted)."""
    check_hostname: bool = True
    """Check that the certificate names the host connected to. Turn off only for a server
    reached by an address its certificate does not name (the CA is still checked)."""

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"{value} does not exist or is not readable")
        return value

    @model_validator(mode="after")
    def _cert_with_key(self) -> RedisTLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self


class RedisSentinelConfig(StrictModel):
    """Redis behind Sentinel (``redis.mode: sentinel``): the sentinels say which node is the
    master, and clients follow a failover without a restart (docs/high-availability.md)."""

    master_name: Annotated[str, Field(min_length=1)]
    """The name the sentinels monitor the master under (``sentinel monitor <name> ...``)."""
    nodes: Annotated[tuple[Annotated[str, AfterValidator(_host_port)], ...], Field(min_length=1)]
    """The sentinels, ``host:port`` each; give all of them (any one that answers will do)."""
    db: Annotated[int, Field(ge=0)] = 0
    username: str | None = None
    """The sentinels' own ACL user (``sentinel sentinel-user``), if they require one."""
    password: SecretRef | None = None
    """The sentinels' own password (``requirepass`` on the sentinels, ``sentinel
    sentinel-pass``), as ``env:NAME`` or ``file:/path``; the data nodes' is ``redis.password``."""
    tls: bool = False
    """Reach the sentinels over TLS too, with the settings of ``redis.tls``."""


class RedisConfig(StrictModel):
    mode: Literal["standalone", "sentinel", "cluster"] = "standalone"
    """``standalone``: one server at ``url``. ``sentinel``: the master that ``sentinel``'s
    nodes name, followed through failovers (docs/high-availability.md). ``cluster``: a Redis
    Cluster, the broker sharded over it (docs/scaling.md): each pool's queues and jobs live
    under the hash tag of the pool's shard (``pools.<name>.shard``, by default the pool's own
    name), everything else under the namespace's own tag."""
    url: str = "redis://127.0.0.1:6379/0"
    """The server in ``standalone`` mode (``rediss://`` for TLS), or (``mode: cluster``) any node
    of the cluster: the client finds the rest. Not used with Sentinel."""
    username: str | None = None
    """The data nodes' ACL user; overrides one given in ``url``."""
    password: SecretRef | None = None
    """The data nodes' password as ``env:NAME`` or ``file:/path`` (kept out of the config file
    and of ``url``); overrides one given in ``url``."""
    tls: RedisTLSConfig | None = None
    """TLS settings: with ``url`` ``rediss://`` (optional there: the system's CAs), or, with
    Sentinel, TLS to the data nodes."""
    sentinel: RedisSentinelConfig | None = None
    min_replicas_acked: Annotated[int, Field(ge=0)] | None = None
    """Strict durability only: before an acknowledgement, wait (``WAIT``) until this many
    replicas have received every write it depends on; one that does not come in time is a 503.
    Default: 1 under Sentinel, 0 (no wait) otherwise. docs/high-availability.md."""
    replicas_ack_timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How long an acknowledgement waits for ``min_replicas_acked`` replicas."""
    namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")] = "main"
    """Every key carries ``{namespace}`` (or ``{namespace:shard}``) as its hash tag."""
    socket_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    max_connections: Annotated[int, Field(gt=0)] = 256
    durability: Literal["standard", "strict"] = "standard"
    """What an acknowledgement promises (see docs/durability.md). ``standard``: whatever the
    server's persistence gives (AOF ``everysec`` loses up to about the last two seconds of
    accepted jobs and finished results on a power loss). ``strict``: a 202 (or any answer that
    says a job, file or batch was accepted) and a terminal state seen by a client are only sent
    once the write is fsynced. Every process then checks at start, and ``/readyz`` on each
    call, that the server runs ``appendonly yes`` with ``appendfsync always`` (and
    ``no-appendfsync-on-rewrite no``, the default), and refuses to run otherwise; results
    relayed from pub/sub wait for one extra round trip. With ``min_replicas_acked`` (1 by
    default under Sentinel) every acknowledgement also waits for that many replicas
    (``WAIT``), or is a 503 (docs/high-availability.md)."""
    assume_appendfsync_always: bool = False
    """Strict mode on a server that refuses ``CONFIG GET`` (managed Redis): take the operator's
    word that it runs ``appendonly yes`` with ``appendfsync always``, and only log a warning
    instead of refusing to start."""

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _mode_settings(self) -> RedisConfig:
        if self.mode == "sentinel":
            if self.sentinel is None:
                raise ValueError(
                    "sentinel (the master name and the sentinels) is required with mode sentinel"
                )
            if "url" in self.model_fields_set:
                raise ValueError(
                    "url is not used with mode sentinel (the sentinels name the master); "
                    "remove it, and set sentinel.db for the database"
                )
        elif self.sentinel is not None:
            raise ValueError("sentinel is set, but mode is not sentinel")
        if self.mode == "cluster" and self.tls is not None:
            raise ValueError(
                "tls is not supported with mode cluster yet; a rediss:// url uses the system's CAs"
            )
        if self.mode == "cluster" and self.durability == "strict":
            raise ValueError(
                "durability strict is not supported with mode cluster yet: a job's end reaches "
                "its watchers from another node before its own node has fsynced it "
                "(docs/scaling.md)"
            )
        if self.mode == "standalone" and self.tls is not None and self.url.startswith("redis://"):
            raise ValueError("tls is set, but url is redis://; use rediss:// for TLS")
        if self.sentinel is not None and self.sentinel.tls and self.tls is None:
            raise ValueError(
                "sentinel.tls needs tls (the CA to trust, perhaps a client certificate)"
            )
        return self

    def replicas_to_ack(self) -> int:
        """How many replicas an acknowledgement waits for (strict mode only)."""
        if self.durability != "strict":
            return 0
        if self.min_replicas_acked is not None:
            return self.min_replicas_acked
        return 1 if self.mode == "sentinel" else 0
