"""The admin API's answers in ``/openapi.json``, as the records' ``to_api()`` write them
(``broker/tenants.py``, ``broker/admin_queries.py``, ``api/admin_ops.py``)."""

from __future__ import annotations

from anygate.api.openapi_jsonschema import (
    BOOL,
    INT,
    NUM,
    STR,
    const,
    deleted,
    list_of,
    nullable,
    obj,
)
from anygate.api.openapi_table import JSON, schema_ref

TENANT: JSON = obj(
    {
        "object": const("tenant"),
        "id": STR,
        "weight": INT,
        "disabled": BOOL,
        "auth_mode": {"type": "string", "enum": ["gateway", "passthrough", "hybrid"]},
        "quotas": schema_ref("TenantQuotas"),
        "budget_webhook_url": nullable(STR),
        "provider_batches": BOOL,
        "created_at": NUM,
        "updated_at": NUM,
        "source": {"type": "string", "enum": ["config", "admin"]},
    }
)

API_KEY: JSON = obj(
    {
        "object": const("api_key"),
        "id": STR,
        "tenant": nullable(STR),
        "name": STR,
        "scopes": {"type": "array", "items": STR},
        "redacted_value": STR,
        "created_at": NUM,
        "expires_at": nullable(NUM),
        "rpm": nullable(INT),
        "revoked_at": nullable(NUM),
        "source": {"type": "string", "enum": ["config", "admin", "cli"]},
    },
    description="Never the key itself, except `key` in the answer that created it.",
)

LANE = obj({"class": STR, "tenant": STR, "depth": INT, "oldest_age_s": nullable(NUM)})

QUEUE: JSON = obj(
    {
        "object": const("queue"),
        "id": STR,
        "paused": BOOL,
        "paused_at": nullable(NUM),
        "queued": INT,
        "in_flight": INT,
        "delayed": INT,
        "redeliver": INT,
        "dead_letters": INT,
        "lanes": {"type": "array", "items": LANE},
    },
    description="One pool's queue; `id` is the pool.",
)

WORKER = obj(
    {
        "object": const("worker"),
        "id": STR,
        "concurrency": INT,
        "in_flight": INT,
        "last_heartbeat": NUM,
        "alive": BOOL,
    }
)

WORKER_POOL: JSON = obj(
    {
        "object": const("pool"),
        "id": STR,
        "workers": {"type": "array", "items": WORKER},
        "alive": INT,
        "concurrency": INT,
    }
)

DEPLOYMENT: JSON = obj(
    {
        "object": const("deployment"),
        "id": STR,
        "provider": STR,
        "pool": STR,
        "model": STR,
        "account": nullable(STR),
        "aliases": {"type": "array", "items": STR},
        "state": {"enum": ["ok", "recovering", "cooling_down", "open", "half_open"]},
        "breaker": {"enum": ["closed", "open", "half_open"]},
        "breaker_open_for_s": nullable(NUM),
        "cooling_down_for_s": nullable(NUM),
        "recent_failures": BOOL,
        "recovering": BOOL,
    },
    description="One deployment's health as the workers share it (`id`: `<provider>:<model>`).",
)

POOL_STATE = obj({"object": const("pool"), "id": STR, "paused": BOOL})

REQUEUED: JSON = obj(
    {
        "object": const("dead_letters.requeue"),
        "pool": STR,
        "requeued": {"type": "array", "items": STR},
        "skipped": {"type": "array", "items": obj({"id": STR, "reason": STR})},
    }
)


ADMIN_SCHEMAS: dict[str, JSON] = {
    "Tenant": TENANT,
    "TenantList": list_of(schema_ref("Tenant")),
    "TenantDeleted": deleted("tenant.deleted"),
    "ApiKey": API_KEY,
    "ApiKeyCreated": {"allOf": [schema_ref("ApiKey"), obj({"key": STR})]},
    "ApiKeyList": list_of(schema_ref("ApiKey")),
    "QueueList": list_of(schema_ref("Queue"), lanes_truncated=BOOL),
    "Queue": QUEUE,
    "WorkerPoolList": list_of(schema_ref("WorkerPool")),
    "WorkerPool": WORKER_POOL,
    "DeploymentList": list_of(schema_ref("Deployment"), breaker_enabled=BOOL),
    "Deployment": DEPLOYMENT,
    "PoolState": POOL_STATE,
    "RequeueResult": REQUEUED,
}
