"""The metric catalogue (docs/metrics.md) as data, for the tests of the dashboard and the alert
rules under ``ops/``: every name those query must be one the gateway exposes, with the labels it
carries.

Kept here rather than parsed out of docs/metrics.md so that the dashboard tests do not hang on
that page's layout; ``tests/unit/test_dashboards.py`` checks the two agree whenever the page
lists the series.

Each label maps to the values it takes: the closed sets docs/metrics.md names (an ``outcome``,
a breaker ``state``), or one example value for an open set (a pool, a route). The examples also
make the canned scrape the alert-rule test serves to a real Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]
Source = Literal["process", "cluster"]
Role = Literal["api", "worker", "control"]

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMETHEUS_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus itself attaches to every scraped series."""
PROMETHEUS_SERIES = frozenset({"up"})
"""Series Prometheus writes for every target: ``up`` is 0 when a scrape failed."""

POOL = ("openai",)
MODEL = ("gpt-4o-mini",)
DEPLOYMENT = ("openai/gpt-4o-mini",)
TENANT = ("acme",)
CLASS = ("interactive",)
JOB_OUTCOMES = ("succeeded", "failed", "cancelled", "expired")
ATTEMPT_OUTCOMES = ("ok", "rate_limited", "error", "timeout")


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    source: Source
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    closed: frozenset[str] = frozenset()
    """Labels whose values are a closed set: a matcher on them must name one of those."""

    @property
    def exposed_by(self) -> frozenset[Role]:
        """The processes whose /metrics carry it (docs/metrics.md's "where")."""
        if self.source == "cluster":
            return frozenset({"control"})
        return EXPOSED_BY.get(self.name, frozenset({"worker"}))


def _m(
    name: str,
    kind: Kind,
    source: Source,
    closed: tuple[str, ...] = (),
    /,
    **labels: tuple[str, ...],
) -> Metric:
    """Positional-only, so that a label may be called ``kind``."""
    return Metric(name, kind, source, labels, frozenset(closed))


CATALOGUE: tuple[Metric, ...] = (
    # process series: each process's own, told apart by `instance`
    _m(
        "anygate_http_requests_total",
        "counter",
        "process",
        route=("/v1/jobs/{job_id}", "/v1/chat/completions"),
        method=("GET", "POST"),
        status=("200", "202", "429", "500", "503"),
    ),
    _m(
        "anygate_http_request_duration_seconds",
        "histogram",
        "process",
        route=("/v1/jobs/{job_id}",),
        method=("GET",),
    ),
    _m(
        "anygate_cache_requests_total",
        "counter",
        "process",
        ("result",),
        result=("hit", "miss", "bypass"),
    ),
    _m(
        "anygate_upstream_request_duration_seconds",
        "histogram",
        "process",
        ("outcome",),
        pool=POOL,
        deployment=DEPLOYMENT,
        model=MODEL,
        outcome=ATTEMPT_OUTCOMES,
    ),
    _m("anygate_time_to_first_token_seconds", "histogram", "process", pool=POOL, model=MODEL),
    _m("anygate_queue_wait_seconds", "histogram", "process", pool=POOL, **{"class": CLASS}),
    _m(
        "anygate_job_duration_seconds",
        "histogram",
        "process",
        pool=POOL,
        model=MODEL,
        outcome=JOB_OUTCOMES,
    ),
    _m(
        "anygate_rate_limit_waits_total",
        "counter",
        "process",
        ("limit",),
        pool=POOL,
        deployment=DEPLOYMENT,
        limit=("rpm", "tpm", "tenant"),
    ),
    _m(
        "anygate_rate_limit_wait_seconds_total",
        "counter",
        "process",
        pool=POOL,
        deployment=DEPLOYMENT,
    ),
    _m("anygate_upstream_cooldowns_total", "counter", "process", deployment=DEPLOYMENT),
    _m("anygate_retries_total", "counter", "process", pool=POOL, reason=("upstream_5xx",)),
    _m("anygate_worker_slots", "gauge", "process", pool=POOL),
    _m("anygate_worker_slots_busy", "gauge", "process", pool=POOL),
    _m(
        "anygate_webhook_deliveries_total",
        "counter",
        "process",
        ("kind", "outcome"),
        kind=("job", "batch", "budget"),
        outcome=("delivered", "retried", "abandoned", "dropped"),
    ),
    _m(
        "anygate_execution_choices_total",
        "counter",
        "process",
        ("execution", "because"),
        execution=("live", "provider_batch"),
        because=(
            "room",
            "stream",
            "endpoint",
            "no_deadline",
            "deadline",
            "deployment",
            "tenant",
            "client_key",
        ),
    ),
    _m(
        "anygate_provider_batches_total",
        "counter",
        "process",
        ("outcome",),
        pool=POOL,
        outcome=("completed", "expired", "failed", "cut_off", "not_started"),
    ),
    _m(
        "anygate_provider_batch_jobs_total",
        "counter",
        "process",
        ("outcome",),
        pool=POOL,
        outcome=("answered", "failed", "live"),
    ),
    _m("anygate_provider_batch_saved_usd_total", "counter", "process", pool=POOL),
    _m("anygate_redis_errors_total", "counter", "process", kind=("TimeoutError",)),
    _m("anygate_redis_roundtrip_seconds", "histogram", "process"),
    _m(
        "anygate_budget_warnings_total",
        "counter",
        "process",
        ("period", "threshold"),
        period=("day", "month"),
        threshold=("50", "80", "100"),
    ),
    _m(
        "anygate_config_reloads_total",
        "counter",
        "process",
        ("outcome",),
        outcome=("applied", "refused"),
    ),
    _m("anygate_config_generation", "gauge", "process"),
    _m("anygate_config_info", "gauge", "process", hash=("5c377fa9964a",)),
    # cluster series: kept in Redis by the Lua scripts, exposed by every control process alike
    _m(
        "anygate_jobs_submitted_total",
        "counter",
        "cluster",
        pool=POOL,
        model=MODEL,
        **{"class": CLASS},
    ),
    _m("anygate_jobs_started_total", "counter", "cluster", pool=POOL, model=MODEL),
    _m(
        "anygate_jobs_finished_total",
        "counter",
        "cluster",
        ("outcome",),
        pool=POOL,
        model=MODEL,
        outcome=JOB_OUTCOMES,
    ),
    _m("anygate_job_redeliveries_total", "counter", "cluster", pool=POOL),
    _m("anygate_dead_letters", "gauge", "cluster", pool=POOL),
    _m("anygate_queue_depth", "gauge", "cluster", pool=POOL, **{"class": CLASS}),
    _m("anygate_queue_oldest_age_seconds", "gauge", "cluster", pool=POOL, **{"class": CLASS}),
    _m(
        "anygate_tokens_total",
        "counter",
        "cluster",
        ("kind",),
        model=MODEL,
        tenant=TENANT,
        kind=("prompt", "completion"),
    ),
    _m("anygate_cost_usd_total", "counter", "cluster", model=MODEL, tenant=TENANT),
    _m(
        "anygate_breaker_state",
        "gauge",
        "cluster",
        ("state",),
        deployment=DEPLOYMENT,
        state=("closed", "open", "half_open", "cooling"),
    ),
    _m(
        "anygate_batch_lines",
        "gauge",
        "cluster",
        ("state",),
        state=("queued", "running", "completed", "failed"),
    ),
    _m(
        "anygate_budget_used_ratio",
        "gauge",
        "cluster",
        ("period",),
        tenant=TENANT,
        period=("day", "month"),
    ),
    _m("anygate_workers_alive", "gauge", "cluster", pool=POOL),
)

EVERY_PROCESS: frozenset[Role] = frozenset({"api", "worker", "control"})
EXPOSED_BY: dict[str, frozenset[Role]] = {
    "anygate_http_requests_total": frozenset({"api"}),
    "anygate_http_request_duration_seconds": frozenset({"api"}),
    "anygate_cache_requests_total": frozenset({"api"}),
    "anygate_webhook_deliveries_total": frozenset({"control"}),
    "anygate_budget_warnings_total": frozenset({"control"}),
    "anygate_execution_choices_total": frozenset({"api", "control"}),
    "anygate_provider_batches_total": frozenset({"control"}),
    "anygate_provider_batch_jobs_total": frozenset({"control"}),
    "anygate_provider_batch_saved_usd_total": frozenset({"control"}),
    "anygate_redis_errors_total": EVERY_PROCESS,
    "anygate_redis_roundtrip_seconds": EVERY_PROCESS,
    "anygate_config_reloads_total": EVERY_PROCESS,
    "anygate_config_generation": EVERY_PROCESS,
    "anygate_config_info": EVERY_PROCESS,
}
"""Process series not exposed by the workers alone."""

BY_NAME: dict[str, Metric] = {metric.name: metric for metric in CATALOGUE}


def lookup(series: str) -> Metric | None:
    """The catalogue entry a series name belongs to: a histogram's ``_bucket``, ``_sum`` and
    ``_count`` series belong to the histogram; nothing else has a suffix stripped."""
    if series in BY_NAME:
        return BY_NAME[series]
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and base in BY_NAME and BY_NAME[base].kind == "histogram":
            return BY_NAME[base]
    return None
