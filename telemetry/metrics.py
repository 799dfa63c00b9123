"""The process series of the metric catalogue (docs/metrics.md), and one-line helpers to
record them.

Every series lives in prometheus_client's default registry, on purpose: a process has exactly
one set of series, whichever module records them, so there is nothing to pass around; the
registry also carries the client's own process and platform collectors (CPU, memory, open
files, GC) for free, and ``start_http_server`` and ``generate_latest`` serve it as is. A
registry object threaded through every constructor would buy isolation only tests need, and
tests read deltas instead (``REGISTRY.get_sample_value`` before and after).

Label values are bounded by construction: route templates, never raw paths; pools, deployments
and models from the configuration; outcomes and reasons from fixed sets. Each helper binds its
label children once per distinct label tuple (``functools.cache``), so the hot path is a dict
lookup and an increment: no lock taken for ``labels()``, no label dict built per call.
"""

from __future__ import annotations

import functools
from typing import Literal

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.registry import Collector

from anygate.config.reload import ConfigState

disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
"""No ``*_created`` gauge beside every counter and histogram: they would double the series a
scrape carries, for a start time the text format's readers do not use (a restart shows as a
counter reset all the same)."""

_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Requests: from a cached answer in milliseconds to a long stream or long poll."""
_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
"""Upstream calls and whole jobs: an embedding in tens of ms, a long generation in minutes."""
_FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60)
_WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400)
"""Queue waits: an idle pool claims in milliseconds, a batch may wait for hours."""
_REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

CacheResult = Literal["hit", "miss", "bypass"]
ProviderBatchOutcome = Literal["completed", "expired", "failed", "cut_off", "not_started"]
ProviderBatchJobOutcome = Literal["answered", "failed", "live"]
UpstreamOutcome = Literal["ok", "rate_limited", "error", "timeout"]
RateLimit = Literal["rpm", "tpm", "tenant"]
WebhookKind = Literal["job", "batch", "budget"]
WebhookOutcome = Literal["delivered", "retried", "abandoned", "dropped"]

# --- API ----------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "anygate_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ("route", "method", "status"),
)
HTTP_REQUEST_DURATION = Histogram(
    "anygate_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response (a stream: its last byte).",
    ("route", "method"),
    buckets=_HTTP_BUCKETS,
)
CACHE_REQUESTS = Counter(
    "anygate_cache_requests",
    "Response cache look-ups of cacheable requests: hit, miss, or bypass (the caller skipped "
    "or refreshed it).",
    ("result",),
)

# --- workers ------------------------------------------------------------------------------------

UPSTREAM_REQUEST_DURATION = Histogram(
    "anygate_upstream_request_duration_seconds",
    "Provider calls, from request to the end of the answer, by outcome.",
    ("pool", "deployment", "model", "outcome"),
    buckets=_CALL_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "anygate_time_to_first_token_seconds",
    "Streamed provider calls: time from the request to the first chunk.",
    ("pool", "model"),
    buckets=_FIRST_TOKEN_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "anygate_queue_wait_seconds",
    "Time a job waited in its lane before a worker claimed it (claim time - lane entry).",
    ("pool", "class"),
    buckets=_WAIT_BUCKETS,
)
JOB_DURATION = Histogram(
    "anygate_job_duration_seconds",
    "Jobs this worker ended, from creation to their terminal state.",
    ("pool", "model", "outcome"),
    buckets=_WAIT_BUCKETS,
)
RATE_LIMIT_WAITS = Counter(
    "anygate_rate_limit_waits",
    "Jobs sent back to wait because a rate window was full, by the limit that refused.",
    ("pool", "deployment", "limit"),
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "anygate_rate_limit_wait_seconds",
    "Seconds of delay those jobs were given.",
    ("pool", "deployment"),
)
UPSTREAM_COOLDOWNS = Counter(
    "anygate_upstream_cooldowns",
    "429 cool-downs this worker began on a deployment.",
    ("deployment",),
)
RETRIES = Counter(
    "anygate_retries",
    "Jobs sent back after a failed provider call, by reason.",
    ("pool", "reason"),
)
WORKER_SLOTS = Gauge("anygate_worker_slots", "Job slots of this worker process.", ("pool",))
WORKER_SLOTS_BUSY = Gauge(
    "anygate_worker_slots_busy", "Slots of this worker process holding a job.", ("pool",)
)

# --- control ------------------------------------------------------------------------------------

WEBHOOK_DELIVERIES = Counter(
    "anygate_webhook_deliveries",
    "Webhook delivery attempts, by kind and outcome.",
    ("kind", "outcome"),
)
BUDGET_WARNINGS = Counter(
    "anygate_budget_warnings",
    "Budget warnings sent, by period and threshold (percent).",
    ("period", "threshold"),
)
PROVIDER_BATCHES = Counter(
    "anygate_provider_batches",
    "Provider batches finished with, by how they ended.",
    ("pool", "outcome"),
)
PROVIDER_BATCH_JOBS = Counter(
    "anygate_provider_batch_jobs",
    "Jobs of provider batches, by what became of each: answered, failed, or sent live.",
    ("pool", "outcome"),
)
PROVIDER_BATCH_SAVED = Counter(
    "anygate_provider_batch_saved_usd",
    "List price less the discounted price of the jobs provider batches answered (USD).",
    ("pool",),
)

# --- API and control ----------------------------------------------------------------------------

EXECUTION_CHOICES = Counter(
    "anygate_execution_choices",
    "New jobs by the path chosen to their provider, and why not a provider batch.",
    ("execution", "because"),
)

# --- every process ------------------------------------------------------------------------------

REDIS_ERRORS = Counter(
    "anygate_redis_errors",
    "Errors met talking to Redis, by exception class.",
    ("kind",),
)
REDIS_ROUNDTRIP = Histogram(
    "anygate_redis_roundtrip_seconds",
    "Round trips of the process's liveness pings (and a worker's heartbeat) to Redis.",
    buckets=_REDIS_BUCKETS,
)
CONFIG_RELOADS = Counter(
    "anygate_config_reloads",
    "Configuration reloads (SIGHUP, a file change), by outcome: applied, or refused (invalid, "
    "or a change that needs a restart; the previous config keeps serving).",
    ("outcome",),
)
CONFIG_GENERATION = Gauge(
    "anygate_config_generation",
    "How many configs this process has run: 1 at start, one more per applied reload.",
)
CONFIG_INFO = Gauge(
    "anygate_config_info",
    "Always 1, labelled with the hash of the config this process runs: every process of a "
    "deployment given the same file and environment shows the same hash.",
    ("hash",),
)
for _outcome in ("applied", "refused"):  # both shown from the start, at 0
    CONFIG_RELOADS.labels(_outcome)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@functools.cache
def _http_children(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    return (
        HTTP_REQUESTS.labels(route, method, str(status)),
        HTTP_REQUEST_DURATION.labels(route, method),
    )


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    """One answered request. A method outside HTTP's usual set counts as ``OTHER``: a client
    may send any token there."""
    counter, histogram = _http_children(route, method if method in _METHODS else "OTHER", status)
    counter.inc()
    histogram.observe(seconds)


@functools.cache
def _cache_child(result: CacheResult) -> Counter:
    return CACHE_REQUESTS.labels(result)


def count_cache(result: CacheResult) -> None:
    _cache_child(result).inc()


@functools.cache
def _upstream_child(pool: str, deployment: str, model: str, outcome: str) -> Histogram:
    return UPSTREAM_REQUEST_DURATION.labels(pool, deployment, model, outcome)


def observe_upstream(
    pool: str, deployment: str, model: str, outcome: UpstreamOutcome, seconds: float
) -> None:
    _upstream_child(pool, deployment, model, outcome).observe(seconds)


@functools.cache
def _first_token_child(pool: str, model: str) -> Histogram:
    return TIME_TO_FIRST_TOKEN.labels(pool, model)


def observe_first_token(pool: str, model: str, seconds: float) -> None:
    _first_token_child(pool, model).observe(seconds)


@functools.cache
def _queue_wait_child(pool: str, priority_class: str) -> Histogram:
    return QUEUE_WAIT.labels(pool, priority_class)


def observe_queue_wait(pool: str, priority_class: str, seconds: float) -> None:
    """Clamped at zero: the job's creation time is Redis's clock, the claim's this host's."""
    _queue_wait_child(pool, priority_class).observe(max(0.0, seconds))


@functools.cache
def _job_child(pool: str, model: str, outcome: str) -> Histogram:
    return JOB_DURATION.labels(pool, model, outcome)


def observe_job(
    pool: str, model: str, outcome: Literal["succeeded", "failed"], seconds: float
) -> None:
    _job_child(pool, model, outcome).observe(max(0.0, seconds))


@functools.cache
def _rate_wait_children(pool: str, deployment: str, limit: RateLimit) -> tuple[Counter, Counter]:
    return (
        RATE_LIMIT_WAITS.labels(pool, deployment, limit),
        RATE_LIMIT_WAIT_SECONDS.labels(pool, deployment),
    )


def count_rate_limit_wait(pool: str, deployment: str, limit: RateLimit, seconds: float) -> None:
    waits, waited = _rate_wait_children(pool, deployment, limit)
    waits.inc()
    waited.inc(max(0.0, seconds))


@functools.cache
def _cooldown_child(deployment: str) -> Counter:
    return UPSTREAM_COOLDOWNS.labels(deployment)


def count_cooldown(deployment: str) -> None:
    _cooldown_child(deployment).inc()


@functools.cache
def _retry_child(pool: str, reason: str) -> Counter:
    return RETRIES.labels(pool, reason)


def count_retry(pool: str, reason: str) -> None:
    """``reason`` from a fixed set (``workers/disposition.py``), never a provider's own code."""
    _retry_child(pool, reason).inc()


def worker_slots(pool: str) -> tuple[Gauge, Gauge]:
    """The pool's (slots, busy slots) gauges, for the worker to keep."""
    return WORKER_SLOTS.labels(pool), WORKER_SLOTS_BUSY.labels(pool)


@functools.cache
def _webhook_child(kind: WebhookKind, outcome: WebhookOutcome) -> Counter:
    return WEBHOOK_DELIVERIES.labels(kind, outcome)


def count_webhook(kind: WebhookKind, outcome: WebhookOutcome) -> None:
    _webhook_child(kind, outcome).inc()


def count_provider_batch(
    pool: str, outcome: ProviderBatchOutcome, jobs: dict[ProviderBatchJobOutcome, int], saved: float
) -> None:
    """One provider batch finished with: how it ended, its jobs' fates, the money it saved."""
    PROVIDER_BATCHES.labels(pool, outcome).inc()
    for fate, n in jobs.items():
        if n:
            PROVIDER_BATCH_JOBS.labels(pool, fate).inc(n)
    if saved > 0:
        PROVIDER_BATCH_SAVED.labels(pool).inc(saved)


@functools.cache
def _execution_child(execution: str, because: str) -> Counter:
    return EXECUTION_CHOICES.labels(execution, because)


def count_execution(execution: str, because: str | None) -> None:
    """``because``: ``core.execution.LiveBecause`` for a live job; ``room`` for a parked one."""
    _execution_child(execution, because or "room").inc()


def count_budget_warning(period: Literal["day", "month"], threshold: int) -> None:
    BUDGET_WARNINGS.labels(period, str(threshold)).inc()


@functools.cache
def _redis_error_child(kind: str) -> Counter:
    return REDIS_ERRORS.labels(kind)


def count_redis_error(exc: BaseException) -> None:
    """Labelled by the exception's class name: a handful of redis-py and builtin classes."""
    _redis_error_child(type(exc).__name__).inc()


def observe_redis_roundtrip(seconds: float) -> None:
    REDIS_ROUNDTRIP.observe(seconds)


def record_config(
    outcome: Literal["applied", "refused", "unchanged"] | None, state: ConfigState
) -> None:
    """A config reload's outcome (None: the config a process started with) and the config it
    now runs; the previous hash's series goes, so each process shows exactly one."""
    if outcome is not None and outcome != "unchanged":
        CONFIG_RELOADS.labels(outcome).inc()
    CONFIG_GENERATION.set(state.generation)
    CONFIG_INFO.clear()
    CONFIG_INFO.labels(state.hash).set(1)


def register_collector(collector: Collector) -> None:
    """Add a collector to this process's registry (the cluster series, in control): its
    series are then served with the process series, by whatever serves them."""
    REGISTRY.register(collector)


def unregister_collector(collector: Collector) -> None:
    """The reverse of ``register_collector``, for a component that stops before its process."""
    REGISTRY.unregister(collector)
