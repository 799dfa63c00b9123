"""The whole configuration as one validated pydantic model.

Read once at start and passed down explicitly: no module reads the environment on its own, so a
process's behaviour is fully described by the object it was given (and tests build one directly).
Unknown keys are errors everywhere (``extra="forbid"``): a typo must not silently fall back to a
default in production.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from anygate.config.base import StrictModel
from anygate.config.providers import (
    Deployment,
    ModelKind,
    ModelRoute,
    ProviderConfig,
    ProviderKind,
)
from anygate.config.redis_settings import RedisConfig
from anygate.config.secrets import SecretRef
from anygate.config.server import ServerConfig

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Priority(enum.StrEnum):
    """Priority classes (docs/queue-semantics.md#dispatch-order-weights-and-fairness); each is its
    own lane per tenant."""

    INTERACTIVE = "interactive"
    STANDARD = "standard"
    BATCH = "batch"


class CacheConfig(StrictModel):
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


class PriorityWeights(StrictModel):
    interactive: Annotated[int, Field(ge=1, le=1000)] = 16
    standard: Annotated[int, Field(ge=1, le=1000)] = 4
    batch: Annotated[int, Field(ge=1, le=1000)] = 1

    def of(self, priority: Priority) -> int:
        return int(getattr(self, priority.value))


class BreakerConfig(StrictModel):
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


class QueueConfig(StrictModel):
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


class RetentionConfig(StrictModel):
    result_ttl_s: Annotated[int, Field(ge=1)] = 86_400
    """How long a finished job's record and events are kept: a day. Only accelerated tests go
    below a minute (the chaos suite waits retention out to compare Redis with its baseline)."""
    idempotency_ttl_s: Annotated[int, Field(ge=1)] = 86_400
    """How long an Idempotency-Key maps to its job: a day; shortened by the same tests."""


class BatchesConfig(StrictModel):
    day_s: Annotated[int, Field(ge=1, le=86_400)] = 86_400
    """How long the "24h" completion window lasts: 86,400 s. Only accelerated tests shorten it
    (an expiry test cannot wait a day)."""


class FilesConfig(StrictModel):
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


class PoolConfig(StrictModel):
    concurrency: Annotated[int, Field(ge=1, le=10_000)] = 64
    shard: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] | None = None
    """The shard (a hash tag, so a cluster slot) that holds this pool's queues and jobs
    (docs/scaling.md). Unset: the pool's own name on a cluster, the namespace's shard
    otherwise. Pools may share a shard; a fallback between pools of two shards is a hand-off."""


class TenantQuotas(StrictModel):
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


class TenantSettings(StrictModel):
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


class SecurityConfig(StrictModel):
    encryption_key: SecretRef | None = None
    """32 random bytes, base64: the AES-256-GCM key that encrypts client provider keys (BYOK)
    while their job waits. Required when any tenant's ``auth_mode`` is not ``gateway``.
    ``anygate keys new-encryption-key`` prints a fresh one."""
    webhook_secret: SecretRef | None = None
    """The HMAC-SHA256 key that signs webhooks (``x-anygate-signature``); a batch or job with a
    ``webhook_url`` needs it."""


class LoggingConfig(StrictModel):
    """The API's access log (docs/operations.md#access-log): one line per HTTP request."""

    access_log: bool = True
    access_log_sample: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Share of successful requests logged; a request answered 400 or above always is."""


class BudgetWarningsConfig(StrictModel):
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


class MetricsConfig(StrictModel):
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


class ProviderBatchConfig(StrictModel):
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


class AnygateConfig(StrictModel):
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
