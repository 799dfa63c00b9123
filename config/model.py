"""The whole configuration as one validated pydantic model.

Read once at start and passed down explicitly: no module reads the environment on its own, so a
process's behaviour is fully described by the object it was given (and tests build one directly).
Unknown keys are errors everywhere (``extra="forbid"``): a typo must not silently fall back to a
default in production.
"""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from anygate.config.secrets import SecretRef

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Priority(enum.StrEnum):
    """Priority classes (docs/queue-semantics.md#dispatch-order-weights-and-fairness); each is its
    own lane per tenant."""

    INTERACTIVE = "interactive"
    STANDARD = "standard"
    BATCH = "batch"


class ProviderKind(enum.StrEnum):
    OPENAI = "openai"
    GEMINI = "gemini"
    OPENAI_COMPATIBLE = "openai_compatible"
    AZURE_OPENAI = "azure_openai"
    VERTEX = "vertex"

    @property
    def speaks_gemini(self) -> bool:
        """Gemini's request and response shapes (AI Studio's API or Vertex AI's)."""
        return self in {ProviderKind.GEMINI, ProviderKind.VERTEX}


class TlsConfig(_Strict):
    """HTTPS on the API's own port (docs/tls.md): a certificate and its key, and optionally the
    CA whose client certificates are asked for (mutual TLS). Present means HTTPS; absent (the
    default) means plain HTTP, for running behind a TLS-terminating ingress.

    Only ``anygate api`` reads the files, so only it checks that they exist and hold what they
    should (``file_problems`` and the start-up check in ``anygate.ops.tls``): workers and the
    control plane share this file and need not carry the API's certificate."""

    cert_file: Annotated[str, Field(min_length=1)]
    """The server certificate, PEM, leaf first and any intermediates after it."""
    key_file: Annotated[str, Field(min_length=1)]
    """Its private key, PEM (encrypted or not)."""
    key_password: SecretRef | None = None
    """Where the password of an encrypted ``key_file`` lives (``env:NAME``, ``file:/path``)."""
    client_ca_file: Annotated[str, Field(min_length=1)] | None = None
    """The CA certificate(s), PEM, that client certificates must chain to. Given alone, every
    client must present one (``client_cert`` defaults to ``required``)."""
    client_cert: Literal["none", "optional", "required"] | None = None
    """Whether a client must present a certificate signed by ``client_ca_file``: ``required``
    (refused at the handshake without one), ``optional`` (one is checked when sent, none is
    fine) or ``none`` (never asked). Default: ``required`` with a ``client_ca_file``, else
    ``none``."""
    reload_check_s: Annotated[float, Field(ge=0, le=3600)] = 10.0
    """How often, at most, a new connection makes the API look at the files again: when one
    changed (a renewed certificate), new connections get the new files, while open ones go on
    with the old. 0: never; a restart loads them."""

    @property
    def client_cert_mode(self) -> Literal["none", "optional", "required"]:
        if self.client_cert is not None:
            return self.client_cert
        return "required" if self.client_ca_file is not None else "none"

    @model_validator(mode="after")
    def _client_ca_given(self) -> TlsConfig:
        if self.client_cert in ("optional", "required") and self.client_ca_file is None:
            raise ValueError(
                f"client_ca_file is required with client_cert: {self.client_cert} "
                "(the CA that client certificates must chain to)"
            )
        return self

    def file_problems(self) -> list[tuple[str, str]]:
        """``(field, problem)`` for each file that is missing, not a file or unreadable; what the
        files hold is checked by loading them (``anygate.ops.tls``)."""
        files = [("cert_file", self.cert_file), ("key_file", self.key_file)]
        if self.client_ca_file is not None and self.client_cert_mode != "none":
            files.append(("client_ca_file", self.client_ca_file))
        problems = []
        for field, name in files:
            path = Path(name)
            if not path.exists():
                problems.append((field, f"no such file: {path}"))
            elif not path.is_file():
                problems.append((field, f"not a regular file: {path}"))
            elif not os.access(path, os.R_OK):
                problems.append((field, f"not readable by this process: {path}"))
        return problems


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    long_poll_max_s: Annotated[float, Field(gt=0, le=60)] = 60.0
    sync_timeout_s: Annotated[float, Field(gt=0)] = 600.0
    """How long a synchronous (OpenAI/Gemini-compatible) call waits without an event (the
    result, a chunk) before answering 504; the job goes on and can be fetched later."""
    cancel_on_disconnect: Literal["before_stream", "always", "never"] = "before_stream"
    """A synchronous caller that goes away cancels its job: only before anything was streamed to
    it (default, docs/queue-semantics.md), always, or never."""
    max_json_depth: Annotated[int, Field(ge=1, le=128)] = 64
    """Deepest nesting of objects and arrays a request body may have (the body itself is level
    1); deeper is a 400 ``json_too_deep`` before any validation. No real request nests more than
    a dozen levels, while every deep level costs recursion in validation and serialisation; the
    cap of 128 keeps a body well inside orjson's own 254-level limit when the gateway writes it
    back out (a deeper one would fail there, as a 500)."""
    max_header_count: Annotated[int, Field(ge=8, le=10_000)] = 100
    """More request headers than this is a 431 ``headers_too_large`` (clients send ~10-20)."""
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 32 * 1024
    """Request headers totalling more (names plus values) is a 431 ``headers_too_large``. The
    HTTP parser (uvicorn's httptools) sets no limit of its own on header size."""
    max_url_bytes: Annotated[int, Field(ge=256, le=65_535)] = 8192
    """A longer URL (path and query, as sent) is a 414 ``url_too_long``. httptools refuses
    URLs over 65,535 bytes itself, with a bare 400, before the application sees them."""
    keepalive_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    """A stream (SSE job events, streamed chat on both surfaces) that has nothing to send for
    this long sends a keep-alive (an SSE comment, or whitespace where comments are not
    understood), so proxies with an idle timeout do not cut a caller who is waiting."""
    redis_wait_s: Annotated[float, Field(gt=0, le=60)] = 1.5
    """How long a request waits on Redis before it is answered 503 with ``Retry-After``: while
    Redis is away, requests fail fast instead of hanging (and at once once the outage is
    known)."""
    tls: TlsConfig | None = None
    """Serve HTTPS instead of HTTP (docs/tls.md); ``anygate api --tls-*`` flags override it."""


def _host_port(raw: str) -> str:
    """``host:port`` (an IPv6 host in brackets: ``[::1]:26379``)."""
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, not {raw!r}")
    return raw


class RedisTLSConfig(_Strict):
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


class RedisSentinelConfig(_Strict):
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


class RedisConfig(_Strict):
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


_HTTP_URL = r"^https?://[^\s/?#]+[^\s?#]*$"
_API_VERSION = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$"


class ProviderConfig(_Strict):
    kind: ProviderKind
    base_url: Annotated[str, Field(pattern=_HTTP_URL)] | None = None
    """Defaults per kind; point it at any compatible server (vLLM, Ollama, the mock). For
    ``azure_openai``: the resource endpoint, ``https://<resource>.openai.azure.com`` (required).
    For ``vertex``: overrides the regional host (tests, private endpoints)."""
    api_key: SecretRef | None = None
    """For ``azure_openai``: sent as the ``api-key`` header (or use ``azure_ad_token``)."""
    timeout_s: Annotated[float, Field(gt=0)] = 600.0
    connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    api_version: Annotated[str, Field(pattern=_API_VERSION)] | None = None
    """``azure_openai`` only, required: the ``api-version`` query parameter (``2024-10-21``)."""
    azure_ad_token: SecretRef | None = None
    """``azure_openai`` only: a Microsoft Entra ID access token, sent as ``Authorization:
    Bearer``, instead of ``api_key``. A ``file:`` token is read again whenever the file changes,
    so whatever renews the token (a sidecar, workload identity) only has to rewrite it."""
    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$")] | None = None
    """``vertex`` only, required: the Google Cloud project id."""
    location: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,64}$")] | None = None
    """``vertex`` only, required: the region (``us-central1``) or ``global``."""
    credentials_file: Annotated[str, Field(min_length=1)] | None = None
    """``vertex`` only: path of a service-account JSON key file."""
    credentials: SecretRef | None = None
    """``vertex`` only: a secret holding the service-account JSON itself (``env:NAME``,
    ``file:/path``), instead of ``credentials_file``."""

    @model_validator(mode="after")
    def _kind_settings(self) -> ProviderConfig:
        azure = ("api_version", "azure_ad_token")
        vertex = ("project", "location", "credentials_file", "credentials")
        own = {ProviderKind.AZURE_OPENAI: azure, ProviderKind.VERTEX: vertex}.get(self.kind, ())
        for name in (*azure, *vertex):
            if name not in own and getattr(self, name) is not None:
                raise ValueError(f"{name}: not a setting of kind {self.kind.value}")
        if self.kind is ProviderKind.AZURE_OPENAI:
            self._check_azure()
        elif self.kind is ProviderKind.VERTEX:
            self._check_vertex()
        return self

    def _check_azure(self) -> None:
        if self.base_url is None:
            raise ValueError(
                "base_url: required with kind azure_openai (the resource endpoint, "
                "https://<resource>.openai.azure.com)"
            )
        if self.api_version is None:
            raise ValueError("api_version: required with kind azure_openai (e.g. 2024-10-21)")
        if (self.api_key is None) == (self.azure_ad_token is None):
            raise ValueError(
                "api_key, azure_ad_token: kind azure_openai takes exactly one of the two "
                "(an api-key, or an Entra ID bearer token)"
            )

    def _check_vertex(self) -> None:
        if self.project is None:
            raise ValueError("project: required with kind vertex (the Google Cloud project id)")
        if self.location is None:
            raise ValueError("location: required with kind vertex (us-central1, global, ...)")
        if (self.credentials_file is None) == (self.credentials is None):
            raise ValueError(
                "credentials_file, credentials: kind vertex takes exactly one of the two "
                "(the service account's JSON key, as a path or as a secret)"
            )
        if self.api_key is not None:
            raise ValueError(
                "api_key: kind vertex authenticates with a service account "
                "(credentials_file or credentials), not an API key"
            )

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.kind is ProviderKind.GEMINI:
            return "https://generativelanguage.googleapis.com"
        if self.kind is ProviderKind.VERTEX:
            prefix = "" if self.location == "global" else f"{self.location}-"
            return f"https://{prefix}aiplatform.googleapis.com"
        return "https://api.openai.com/v1"


class Deployment(_Strict):
    provider: str
    model: str
    """The upstream's own model name (for ``azure_openai``: the Azure deployment's name)."""
    account: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")] | None = None
    """Which of the provider's accounts serves this deployment: a short label, required with
    ``api_key`` or ``base_url``. It keeps two deployments of one upstream model on two
    accounts apart: each has its own rate windows, cool-downs and breaker, kept under
    ``provider:model@account`` (docs/operations.md#accounts)."""
    api_key: SecretRef | None = None
    """This account's key, instead of the provider's (sent the way the provider's kind sends
    keys). Not for ``vertex``, whose credentials are the provider's service account."""
    base_url: Annotated[str, Field(pattern=_HTTP_URL)] | None = None
    """This account's base URL (for ``azure_openai``: its resource endpoint), instead of the
    provider's."""
    weight: Annotated[int, Field(ge=1)] = 1
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    input_price_per_m: Annotated[float, Field(ge=0)] = 0.0
    output_price_per_m: Annotated[float, Field(ge=0)] = 0.0
    batch_api: bool = False
    """Patient jobs of tenants that opt in may go to this deployment's provider Batch API
    (docs/provider-batches.md): OpenAI's ``/v1/batches``, Gemini's batch mode."""
    batch_price_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    """The share of the list prices a provider batch is charged (both providers: half)."""

    @model_validator(mode="after")
    def _account_named(self) -> Deployment:
        if self.account is None and (self.api_key is not None or self.base_url is not None):
            raise ValueError(
                "account: required with a deployment's own api_key or base_url (a short "
                "label that keeps this account's limits and health apart)"
            )
        return self


class ModelKind(enum.StrEnum):
    CHAT = "chat"
    EMBEDDING = "embedding"


class ModelRoute(_Strict):
    kind: ModelKind = ModelKind.CHAT
    deployments: Annotated[tuple[Deployment, ...], Field(min_length=1)]
    strategy: Literal["ordered", "weighted", "least_busy", "lowest_latency", "lowest_cost"] = (
        "ordered"
    )
    fallbacks: tuple[str, ...] = ()
    cache: bool = False
    """Answer identical requests from the response cache (docs/queue-semantics.md#cache); a request
    can opt in or out on its own with ``x-anygate-cache: use|skip|refresh``."""


class CacheConfig(_Strict):
    """The exact-match response cache. Entries are scoped to the tenant unless ``scope`` is
    ``global`` (one tenant's answer served to another: only for public, non-personal data)."""

    ttl_s: Annotated[int, Field(ge=1, le=30 * 86_400)] = 3_600
    scope: Literal["tenant", "global"] = "tenant"
    max_temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    """Requests sampled hotter than this are never cached (their answers are meant to vary);
    a request without ``temperature`` counts as the provider default, 1. None: no limit."""
    max_entry_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024
    coalesce: bool = True
    """Identical cacheable requests in flight at once share one upstream call."""


class PriorityWeights(_Strict):
    interactive: Annotated[int, Field(ge=1, le=1000)] = 16
    standard: Annotated[int, Field(ge=1, le=1000)] = 4
    batch: Annotated[int, Field(ge=1, le=1000)] = 1

    def of(self, priority: Priority) -> int:
        return int(getattr(self, priority.value))


class BreakerConfig(_Strict):
    """The circuit breaker of each deployment (docs/queue-semantics.md#retries-and-failover), shared
    by every worker via Redis.

    It opens after ``consecutive_failures`` failed calls in a row, or when at least
    ``min_calls`` calls in the last ``window_s`` failed at ``error_rate`` or more; while open,
    jobs move to their route's next step without calling it. After ``cooldown_s`` one probe
    call is let through: success closes the breaker, failure opens it again."""

    enabled: bool = True
    consecutive_failures: Annotated[int, Field(ge=1)] = 5
    error_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    min_calls: Annotated[int, Field(ge=1)] = 20
    window_s: Annotated[float, Field(gt=0)] = 30.0
    cooldown_s: Annotated[float, Field(gt=0)] = 30.0


class QueueConfig(_Strict):
    visibility_timeout_s: Annotated[float, Field(gt=0)] = 8.0
    """A running job's lease: the worker's heartbeat renews it every ``heartbeat_interval_s``
    however long the call, so a job is redelivered this long after its worker died (plus at
    most ``reclaim_interval_s``), never while its worker lives. Leases do not lapse while
    Redis itself was away (docs/architecture.md)."""
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 2.0
    reclaim_interval_s: Annotated[float, Field(gt=0)] = 1.0
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    """Deliveries lost with their worker (its lease lapsed) before the job is failed as a
    poison job that keeps killing workers. A lost delivery spends none of the job's attempts
    on its deployment."""
    attempts_per_deployment: Annotated[int, Field(ge=1, le=20)] = 3
    """Transient upstream failures on one deployment before the job moves to the next in its
    route. Only the provider's failures count: never a Redis outage or a dead worker."""
    max_cool_downs: Annotated[int, Field(ge=0, le=1000)] = 10
    """Upstream 429s a job waits out on one deployment before it moves to its route's next
    step, when there is one; a job never fails for 429s (its ``deadline`` bounds the wait)."""
    resume_ramp_s: Annotated[float, Field(ge=0, le=600)] = 2.0
    """After a 429 cool-down or an open breaker, one probe call tests the deployment; when it
    succeeds, calls resume gradually over this long (1, 2, 4 … at a time, doubling 8 times),
    not every slot at once. 0: all at once after the probe."""
    sync_max_pause_s: Annotated[float, Field(ge=0)] = 5.0
    """A synchronous call (the compatible surfaces) whose deployments are all paused (cooling
    down after a 429, or breaker open) for longer than this is answered at once: 503 with
    ``Retry-After`` and its job id. A shorter pause it waits out; queued jobs always wait."""
    retry_base_delay_s: Annotated[float, Field(ge=0)] = 0.5
    retry_max_delay_s: Annotated[float, Field(ge=0)] = 30.0
    weights: PriorityWeights = PriorityWeights()
    rate_limit_window_s: Annotated[float, Field(gt=0, le=60)] = 60.0
    """Deployments' ``rpm``/``tpm`` are enforced per window of this length, scaled down
    (``rpm * window / 60``): a shorter window paces more smoothly. It must divide a minute, so
    that no minute ever holds more than the limit."""

    rate_limit_minute_s: Annotated[float, Field(gt=0, le=60)] = 60.0
    """The length of the "minute" that ``rpm``/``tpm`` count: 60. Only accelerated tests
    shorten it (a mock provider enforcing "60 per minute" over a 3 s minute, say)."""
    breaker: BreakerConfig = BreakerConfig()

    @model_validator(mode="after")
    def _window_divides_a_minute(self) -> QueueConfig:
        minute = self.rate_limit_minute_s
        if self.rate_limit_window_s > minute:
            raise ValueError("rate_limit_window_s must not exceed rate_limit_minute_s")
        per_minute = minute / self.rate_limit_window_s
        if abs(per_minute - round(per_minute)) > 1e-9:
            raise ValueError(
                f"rate_limit_window_s must divide a minute of {minute:g} s "
                "(1, 2, 5, 10, 15, 30, 60 ...)"
            )
        return self

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> QueueConfig:
        if self.heartbeat_interval_s * 2 > self.visibility_timeout_s:
            raise ValueError(
                "heartbeat_interval_s must be at most half of visibility_timeout_s, "
                "or a live job's lease can lapse between two heartbeats"
            )
        return self


class RetentionConfig(_Strict):
    result_ttl_s: Annotated[int, Field(ge=1)] = 86_400
    """How long a finished job's record and events are kept: a day. Only accelerated tests go
    below a minute (the chaos suite waits retention out to compare Redis with its baseline)."""
    idempotency_ttl_s: Annotated[int, Field(ge=1)] = 86_400
    """How long an Idempotency-Key maps to its job: a day; shortened by the same tests."""


class BatchesConfig(_Strict):
    day_s: Annotated[int, Field(ge=1, le=86_400)] = 86_400
    """How long the "24h" completion window lasts: 86,400 s. Only accelerated tests shorten it
    (an expiry test cannot wait a day)."""


class FilesConfig(_Strict):
    """Uploaded files (the OpenAI Files API), kept in Redis as line-aligned chunks."""

    max_bytes: Annotated[int, Field(gt=0)] = 200 * 1024 * 1024
    """A larger upload is refused with a 413 as soon as it passes this (OpenAI's batch limit)."""
    max_lines: Annotated[int, Field(gt=0)] = 50_000
    """Request lines a batch file may hold (OpenAI's limit); more is a 400."""
    ttl_s: Annotated[int, Field(ge=1)] = 30 * 86_400
    """Files expire this long after upload (OpenAI keeps batch files 30 days)."""
    chunk_bytes: Annotated[int, Field(ge=64, le=16 * 1024 * 1024)] = 262_144
    """Target size of one stored chunk. Chunks end on line boundaries, so a reader takes whole
    lines chunk by chunk without holding the file; a line longer than this is one chunk."""


class PoolConfig(_Strict):
    concurrency: Annotated[int, Field(ge=1, le=10_000)] = 64
    shard: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] | None = None
    """The shard (a hash tag, so a cluster slot) that holds this pool's queues and jobs
    (docs/scaling.md). Unset: the pool's own name on a cluster, the namespace's shard
    otherwise. Pools may share a shard; a fallback between pools of two shards is a hand-off."""


class TenantQuotas(_Strict):
    """Per-tenant limits (docs/queue-semantics.md#quotas). The in-flight and per-minute limits make
    jobs wait in the queue; the queued-jobs cap and the budgets refuse new work at submit with a
    429. Absent means unlimited."""

    max_in_flight: Annotated[int, Field(ge=1)] | None = None
    rpm: Annotated[int, Field(ge=1)] | None = None
    tpm: Annotated[int, Field(ge=1)] | None = None
    max_queued: Annotated[int, Field(ge=1)] | None = None
    daily_tokens: Annotated[int, Field(ge=1)] | None = None
    monthly_tokens: Annotated[int, Field(ge=1)] | None = None
    daily_usd: Annotated[float, Field(gt=0)] | None = None
    monthly_usd: Annotated[float, Field(gt=0)] | None = None

    @property
    def limits_submit(self) -> bool:
        return any(
            v is not None
            for v in (
                self.max_queued,
                self.daily_tokens,
                self.monthly_tokens,
                self.daily_usd,
                self.monthly_usd,
            )
        )


AuthMode = Literal["gateway", "passthrough", "hybrid"]
"""Whose provider key pays for a tenant's calls (docs/operations.md#security): the gateway's own
(``gateway``), the client's, sent with each request (``passthrough``: required), or the client's
when it sends one and the gateway's otherwise (``hybrid``). A client key is encrypted at rest and
deleted when its job ends."""

TENANT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class TenantSettings(_Strict):
    """What an operator sets on a tenant, in the config file or through the admin API."""

    weight: Annotated[int, Field(ge=1, le=100)] = 1
    disabled: bool = False
    quotas: TenantQuotas = TenantQuotas()
    auth_mode: AuthMode = "gateway"
    budget_webhook_url: Annotated[str, Field(pattern=r"^https?://", max_length=2048)] | None = None
    """Where this tenant's budget warnings go (docs/operations.md#budget-warnings); None: the
    operator's ``budget_warnings.webhook_url``."""
    provider_batches: bool = False
    """The tenant's patient jobs (a deadline, or a batch's completion window, that leaves room)
    may go to a provider's own Batch API at its discount, answering later within the deadline
    (docs/provider-batches.md)."""


class TenantConfig(TenantSettings):
    """A tenant declared in the config file: created in Redis on first start (see
    ``anygate.broker.tenant_store``); after that the admin API is where it changes."""

    id: Annotated[str, Field(pattern=TENANT_ID_PATTERN)]
    api_keys: tuple[SecretRef, ...] = ()
    api_key_sha256: tuple[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], ...] = ()
    """Keys stored as hashes only: what `anygate dev` writes, so the config holds no secret."""

    def settings(self) -> TenantSettings:
        return TenantSettings(
            weight=self.weight,
            disabled=self.disabled,
            quotas=self.quotas,
            auth_mode=self.auth_mode,
            budget_webhook_url=self.budget_webhook_url,
            provider_batches=self.provider_batches,
        )


class SecurityConfig(_Strict):
    encryption_key: SecretRef | None = None
    """32 random bytes, base64: the AES-256-GCM key that encrypts client provider keys (BYOK)
    while their job waits. Required when any tenant's ``auth_mode`` is not ``gateway``.
    ``anygate keys new-encryption-key`` prints a fresh one."""
    webhook_secret: SecretRef | None = None
    """The HMAC-SHA256 key that signs webhooks (``x-anygate-signature``); a batch or job with a
    ``webhook_url`` needs it."""


class LoggingConfig(_Strict):
    """The API's access log (docs/operations.md#access-log): one line per HTTP request."""

    access_log: bool = True
    access_log_sample: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Share of successful requests logged; a request answered 400 or above always is."""


class BudgetWarningsConfig(_Strict):
    """Warnings as a tenant spends its daily and monthly budgets
    (docs/operations.md#budget-warnings): a signed webhook (kind ``budget``) and a log line,
    once per threshold per period."""

    thresholds_pct: Annotated[
        tuple[Annotated[int, Field(ge=1, le=1000)], ...], Field(max_length=10)
    ] = (50, 80, 100)
    """Percentages of a budget whose crossing is announced; empty: no warnings."""
    webhook_url: Annotated[str, Field(pattern=r"^https?://", max_length=2048)] | None = None
    """Where warnings go for a tenant without a ``budget_webhook_url`` of its own; None: the
    log line only."""
    check_interval_s: Annotated[int, Field(ge=1, le=60)] = 5
    """How often (seconds) the control plane compares usage with budgets; a divisor of 60
    keeps the beat even (the check runs at the seconds of each minute divisible by it)."""


class MetricsConfig(_Strict):
    """Prometheus metrics (docs/metrics.md). Each process keeps its own series; the API serves
    its on ``/metrics``, workers and control on ``--metrics-port``."""

    enabled: bool = True
    """False: the API serves no ``/metrics``, opens no metrics port and records no HTTP series
    (workers still record theirs, served only with ``--metrics-port``)."""
    api_access: Literal["admin", "open", "port"] = "admin"
    """Who may read the API's ``/metrics``: an admin key (``admin``), anyone (``open``), or
    anyone who reaches ``api_port``, a listener of its own, while the main port answers 404
    (``port``: keep it off the public network)."""
    api_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    """The metrics listener's port with ``api_access: port`` (bound to ``server.host``)."""
    tenant_label: bool = True
    """Cluster series per tenant carry a ``tenant`` label; false drops it (many tenants)."""

    @model_validator(mode="after")
    def _port_given(self) -> MetricsConfig:
        if self.api_access == "port" and self.api_port is None:
            raise ValueError("api_port is required with api_access: port")
        return self


class ProviderBatchConfig(_Strict):
    """The deadline-aware path (docs/provider-batches.md): when a job waits for a provider
    batch, how long jobs are collected, how often a batch is followed, and when it is given up
    for live calls."""

    min_room_s: Annotated[float, Field(gt=0)] = 3_600.0
    """A job is sent to a provider batch only when its deadline is at least this far away."""
    live_reserve_s: Annotated[float, Field(ge=0)] = 900.0
    """Kept before a job's deadline to finish it with a live call: a provider batch that has
    not answered by then is cancelled, and what it did not run goes live."""
    collect_s: Annotated[float, Field(gt=0, le=3_600)] = 30.0
    """How long parked jobs wait for others before their batch is sent (sooner when
    ``max_lines`` are waiting)."""
    max_lines: Annotated[int, Field(ge=1, le=50_000)] = 50_000
    """Jobs per provider batch (OpenAI's limit is 50,000)."""
    poll_s: Annotated[float, Field(gt=0, le=3_600)] = 30.0
    """How often a provider batch's state is read."""
    cancel_wait_s: Annotated[float, Field(gt=0)] = 600.0
    """After cancelling a batch at its cutoff, how long to wait for the provider to confirm
    before its unanswered jobs go live anyway (a line it still ran is then paid twice)."""
    submit_wait_s: Annotated[float, Field(gt=0)] = 120.0
    """A batch whose jobs were taken but which no provider accepted within this long (its
    control process died in between) sends its jobs live."""

    @model_validator(mode="after")
    def _room_beyond_reserve(self) -> ProviderBatchConfig:
        if self.min_room_s <= self.live_reserve_s:
            raise ValueError(
                "provider_batches.min_room_s: must exceed live_reserve_s "
                f"({self.live_reserve_s:g}), or no job would have time for a batch"
            )
        return self


class AnygateConfig(_Strict):
    server: ServerConfig = ServerConfig()
    redis: RedisConfig = RedisConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    queue: QueueConfig = QueueConfig()
    retention: RetentionConfig = RetentionConfig()
    cache: CacheConfig = CacheConfig()
    files: FilesConfig = FilesConfig()
    batches: BatchesConfig = BatchesConfig()
    provider_batches: ProviderBatchConfig = ProviderBatchConfig()
    pools: dict[str, PoolConfig] = Field(default_factory=dict)
    tenants: tuple[TenantConfig, ...] = ()
    admin_api_keys: tuple[SecretRef, ...] = ()
    admin_api_key_sha256: tuple[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], ...] = ()
    security: SecurityConfig = SecurityConfig()
    logging: LoggingConfig = LoggingConfig()
    budget_warnings: BudgetWarningsConfig = BudgetWarningsConfig()
    metrics: MetricsConfig = MetricsConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _references_resolve(self) -> AnygateConfig:
        for name in self.providers:
            if not _NAME.match(name):
                raise ValueError(f"providers.{name}: names are letters, digits, '_', '.', '-'")
        for alias, route in self.models.items():
            for i, dep in enumerate(route.deployments):
                if dep.provider not in self.providers:
                    raise ValueError(
                        f"models.{alias}.deployments[{i}].provider: unknown provider "
                        f"{dep.provider!r}; configured: {sorted(self.providers)}"
                    )
                self._check_rate_limits(f"models.{alias}.deployments[{i}]", dep)
                self._check_account(f"models.{alias}.deployments[{i}]", dep, route.kind)
            for fb in route.fallbacks:
                if fb not in self.models:
                    raise ValueError(f"models.{alias}.fallbacks: unknown model {fb!r}")
                if self.models[fb].kind is not route.kind:
                    raise ValueError(
                        f"models.{alias}.fallbacks: {fb!r} is a {self.models[fb].kind.value} "
                        f"model, {alias!r} a {route.kind.value} model"
                    )
        self._check_accounts_unique()
        for pool in self.pools:
            if pool not in self.providers:
                raise ValueError(f"pools.{pool}: no provider of that name")
        self._check_tenants()
        return self

    def _check_account(self, where: str, dep: Deployment, kind: ModelKind) -> None:
        provider = self.providers[dep.provider].kind
        if provider is ProviderKind.VERTEX and dep.api_key is not None:
            raise ValueError(
                f"{where}.api_key: a vertex deployment uses its provider's service account; "
                "declare another vertex provider for another account's credentials"
            )
        if provider is ProviderKind.VERTEX and kind is ModelKind.EMBEDDING:
            raise ValueError(
                f"{where}.provider: {dep.provider!r} is a vertex provider, which serves chat "
                "only (Vertex AI's embeddings are a different API, :predict); route embeddings "
                "to a gemini or openai provider"
            )

    def _check_accounts_unique(self) -> None:
        """Two deployments of one provider and upstream model are one deployment (one health,
        one set of limits) unless their accounts differ; the same account must mean the same
        key and base URL wherever it is listed."""
        seen: dict[tuple[str, str, str | None], tuple[str, int, Deployment]] = {}
        for alias, route in self.models.items():
            for i, dep in enumerate(route.deployments):
                if dep.account is None:
                    continue
                first_alias, j, first = seen.setdefault(
                    (dep.provider, dep.model, dep.account), (alias, i, dep)
                )
                if (first_alias, j) == (alias, i):
                    continue
                if first_alias == alias or (first.api_key, first.base_url) != (
                    dep.api_key,
                    dep.base_url,
                ):
                    raise ValueError(
                        f"models.{alias}.deployments[{i}].account: {dep.account!r} is already "
                        f"models.{first_alias}.deployments[{j}]'s account for "
                        f"{dep.provider}:{dep.model}; give each account its own name"
                    )

    def _check_tenants(self) -> None:
        for i, tenant in enumerate(self.tenants):
            self._check_rate_limits(f"tenants[{i}].quotas", tenant.quotas)
            if tenant.auth_mode != "gateway" and self.security.encryption_key is None:
                raise ValueError(
                    f"tenants[{i}].auth_mode: {tenant.auth_mode!r} takes client provider keys, "
                    "which need security.encryption_key to be encrypted at rest"
                )
        ids = [t.id for t in self.tenants]
        if len(ids) != len(set(ids)):
            raise ValueError("tenants: duplicate tenant id")

    def _check_rate_limits(self, where: str, dep: Deployment | TenantQuotas) -> None:
        window_s = self.queue.rate_limit_window_s
        minute_s = self.queue.rate_limit_minute_s
        for field, per_minute in (("rpm", dep.rpm), ("tpm", dep.tpm)):
            if per_minute is not None and per_minute * window_s < minute_s:
                raise ValueError(
                    f"{where}.{field}: {per_minute} per minute is less than one per "
                    f"queue.rate_limit_window_s ({window_s:g} s)"
                )

    def pool(self, name: str) -> PoolConfig:
        return self.pools.get(name, PoolConfig())

    def shard_of(self, pool: str) -> str:
        """The shard a pool's queues and jobs live on; ``""`` is the namespace's own (home)."""
        explicit = self.pool(pool).shard
        if explicit is not None:
            return explicit
        return pool.replace(".", "-") if self.redis.mode == "cluster" else ""

    def pool_shards(self) -> dict[str, str]:
        """Every provider's pool and its shard (a pool exists for each provider)."""
        return {pool: self.shard_of(pool) for pool in self.providers}

    def secret_refs(self, pool: str) -> list[tuple[str, SecretRef]]:
        """Every secret a worker of ``pool`` resolves, with the setting that names it."""
        provider = self.providers.get(pool)
        if provider is None:
            return []
        refs = [
            (f"providers.{pool}.{name}", ref)
            for name in ("api_key", "azure_ad_token", "credentials")
            if (ref := getattr(provider, name)) is not None
        ]
        for alias, route in self.models.items():
            for i, dep in enumerate(route.deployments):
                if dep.provider == pool and dep.api_key is not None:
                    refs.append((f"models.{alias}.deployments[{i}].api_key", dep.api_key))
        return refs

    def provider_key(self, name: str) -> SecretStr | None:
        ref = self.providers[name].api_key
        return ref.resolve() if ref is not None else None
