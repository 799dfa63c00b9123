"""The job store and dispatcher on Redis streams and Lua
(docs/queue-semantics.md#dispatch-order-weights-and-fairness)."""

from anygate.broker.broker import Broker
from anygate.broker.cluster_metrics import ClusterCollector, start_refresh
from anygate.broker.connection import create_redis
from anygate.broker.errors import IdempotencyConflictError
from anygate.broker.ids import digest, new_job_id, new_worker_id
from anygate.broker.keys import CLASS_ORDER, KeySpace
from anygate.broker.models import (
    COUNT_TOKENS,
    TERMINAL_EVENTS,
    ClaimedJob,
    Enqueued,
    JobEvent,
    JobRecord,
    JobStatus,
    NewJob,
    format_stream_id,
    parse_stream_id,
    stream_id_key,
)
from anygate.broker.notify import Subscriptions

__all__ = [
    "CLASS_ORDER",
    "COUNT_TOKENS",
    "TERMINAL_EVENTS",
    "Broker",
    "ClaimedJob",
    "ClusterCollector",
    "Enqueued",
    "IdempotencyConflictError",
    "JobEvent",
    "JobRecord",
    "JobStatus",
    "KeySpace",
    "NewJob",
    "Subscriptions",
    "create_redis",
    "digest",
    "format_stream_id",
    "new_job_id",
    "new_worker_id",
    "parse_stream_id",
    "start_refresh",
    "stream_id_key",
]
