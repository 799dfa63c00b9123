"""Process metrics (docs/metrics.md): the series every process keeps in its own memory, the
helpers that record them, and what serves them.

A layer between ``broker`` and ``config`` (docs/architecture.md, "Layers"): everything above
records into it, and it imports only ``config`` and third-party code.
"""

from anygate.telemetry.exposition import MetricsServer, scrape, serve
from anygate.telemetry.metrics import (
    count_budget_warning,
    count_cache,
    count_cooldown,
    count_execution,
    count_provider_batch,
    count_rate_limit_wait,
    count_redis_error,
    count_retry,
    count_webhook,
    observe_first_token,
    observe_http,
    observe_job,
    observe_queue_wait,
    observe_redis_roundtrip,
    observe_upstream,
    record_config,
    register_collector,
    unregister_collector,
    worker_slots,
)

__all__ = [
    "MetricsServer",
    "count_budget_warning",
    "count_cache",
    "count_cooldown",
    "count_execution",
    "count_provider_batch",
    "count_rate_limit_wait",
    "count_redis_error",
    "count_retry",
    "count_webhook",
    "observe_first_token",
    "observe_http",
    "observe_job",
    "observe_queue_wait",
    "observe_redis_roundtrip",
    "observe_upstream",
    "record_config",
    "register_collector",
    "scrape",
    "serve",
    "unregister_collector",
    "worker_slots",
]
