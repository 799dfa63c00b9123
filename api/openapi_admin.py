"""``/openapi.json`` rows for the admin API (docs/api.md#admin-api): tenants, keys, usage,
queues, workers, pools and dead letters. Every row takes an operator key."""

from __future__ import annotations

from anygate.api.openapi_table import JSON, Answer, Body, Op, schema_ref

TENANT_EXAMPLE: JSON = {"id": "acme", "weight": 2, "quotas": {"rpm": 600, "max_queued": 1000}}
TENANT_CHANGE_EXAMPLE: JSON = {"weight": 3, "quotas": {"rpm": None, "daily_usd": 25.0}}
KEY_EXAMPLE: JSON = {"tenant": "acme", "name": "ci", "scopes": ["inference", "jobs"], "rpm": 120}
REQUEUE_EXAMPLE: JSON = {"pool": "openai"}

UPDATE_DESCRIPTION = (
    "A partial update: only the fields sent change, in `quotas` too (a quota sent as `null` "
    "is lifted)."
)
UPDATE_BODY = Body(schema_ref("TenantSettings"), TENANT_CHANGE_EXAMPLE)
REVOKE_DESCRIPTION = "Idempotent: revoking a revoked key answers its record again."


def _update(method: str, op_id: str) -> Op:
    return Op(
        method,
        "/admin/tenants/{tenant_id}",
        op_id,
        "admin",
        "Change a tenant" + (" (POST, for clients without PATCH)" if method == "POST" else ""),
        "admin",
        (Answer(200, "The tenant.", schema_ref("Tenant")),),
        description=UPDATE_DESCRIPTION,
        body=UPDATE_BODY,
        errors=(400, 404, 413),
    )


def _revoke(method: str, path: str, op_id: str) -> Op:
    return Op(
        method,
        path,
        op_id,
        "admin",
        "Revoke a key",
        "admin",
        (Answer(200, "The key, revoked.", schema_ref("ApiKey")),),
        description=REVOKE_DESCRIPTION,
        errors=(404,),
    )


TENANTS = [
    Op(
        "POST",
        "/admin/tenants",
        "createTenant",
        "admin",
        "Create a tenant",
        "admin",
        (Answer(201, "The tenant.", schema_ref("Tenant")),),
        body=Body(schema_ref("NewTenant"), TENANT_EXAMPLE),
        errors=(400, 409, 413),
    ),
    Op(
        "GET",
        "/admin/tenants",
        "listTenants",
        "admin",
        "List tenants",
        "admin",
        (Answer(200, "A page of tenants.", schema_ref("TenantList")),),
        params=("Limit", "After"),
        errors=(400,),
    ),
    Op(
        "GET",
        "/admin/tenants/{tenant_id}",
        "getTenant",
        "admin",
        "Get a tenant",
        "admin",
        (Answer(200, "The tenant.", schema_ref("Tenant")),),
        errors=(404,),
    ),
    _update("PATCH", "updateTenant"),
    _update("POST", "updateTenantPost"),
    Op(
        "DELETE",
        "/admin/tenants/{tenant_id}",
        "deleteTenant",
        "admin",
        "Delete a tenant (a tombstone: the id is never reused, every key is revoked)",
        "admin",
        (Answer(200, "Deleted.", schema_ref("TenantDeleted")),),
        errors=(404,),
    ),
]

KEYS = [
    Op(
        "POST",
        "/admin/keys",
        "createKey",
        "admin",
        "Create an API key (shown once)",
        "admin",
        (Answer(201, "The key's record and, this once, `key`.", schema_ref("ApiKeyCreated")),),
        description="No `tenant`: an operator key, scope `admin` only. A tenant's key defaults "
        "to every tenant scope (`inference`, `jobs`, `batches`), never `admin`.",
        body=Body(schema_ref("NewKey"), KEY_EXAMPLE),
        errors=(400, 404, 413),
    ),
    Op(
        "GET",
        "/admin/keys",
        "listKeys",
        "admin",
        "List a tenant's keys, or the operator keys",
        "admin",
        (Answer(200, "The keys, revoked ones marked.", schema_ref("ApiKeyList")),),
        params=("KeysTenant",),
        errors=(404,),
    ),
    Op(
        "GET",
        "/admin/keys/{key_id}",
        "getKey",
        "admin",
        "Get a key's record",
        "admin",
        (Answer(200, "The key's record.", schema_ref("ApiKey")),),
        errors=(404,),
    ),
    _revoke("DELETE", "/admin/keys/{key_id}", "revokeKey"),
    _revoke("POST", "/admin/keys/{key_id}/revoke", "revokeKeyPost"),
]

OPERATIONS = [
    Op(
        "GET",
        "/admin/usage",
        "adminUsage",
        "admin",
        "Usage per tenant, model and UTC day",
        "admin",
        (
            Answer(
                200,
                "JSON rows, or with `format=csv` the same rows as CSV.",
                content={
                    "application/json": schema_ref("AdminUsage"),
                    "text/csv": {"type": "string"},
                },
                headers=("content-disposition",),
            ),
        ),
        params=("UsageTenant", "From", "To", "UsageFormat"),
        errors=(400,),
    ),
    Op(
        "GET",
        "/admin/queues",
        "adminQueues",
        "admin",
        "Per pool: lanes' depth and oldest age, in flight, delayed, dead letters, paused",
        "admin",
        (Answer(200, "One entry per pool.", schema_ref("QueueList")),),
    ),
    Op(
        "GET",
        "/admin/workers",
        "adminWorkers",
        "admin",
        "Per pool: registered workers and whether they are alive",
        "admin",
        (Answer(200, "One entry per pool.", schema_ref("WorkerPoolList")),),
    ),
    Op(
        "GET",
        "/admin/deployments",
        "adminDeployments",
        "admin",
        "Each configured deployment's health: state, circuit breaker, 429 cool-down",
        "admin",
        (Answer(200, "One entry per deployment, in id order.", schema_ref("DeploymentList")),),
    ),
    Op(
        "POST",
        "/admin/pools/{pool}/pause",
        "pausePool",
        "admin",
        "Pause a pool (running jobs finish, queued ones wait, submissions are accepted)",
        "admin",
        (Answer(200, "Paused.", schema_ref("PoolState")),),
        errors=(404,),
    ),
    Op(
        "POST",
        "/admin/pools/{pool}/resume",
        "resumePool",
        "admin",
        "Resume a pool",
        "admin",
        (Answer(200, "Resumed.", schema_ref("PoolState")),),
        errors=(404,),
    ),
    Op(
        "GET",
        "/admin/dead-letters",
        "deadLetters",
        "admin",
        "A pool's dead letters, newest first",
        "admin",
        (Answer(200, "A page of failed jobs.", schema_ref("DeadLetterList")),),
        params=("DeadPool", "Limit", "After"),
        errors=(400, 404),
    ),
    Op(
        "POST",
        "/admin/dead-letters/requeue",
        "requeueDeadLetters",
        "admin",
        "Requeue dead letters as fresh jobs",
        "admin",
        (
            Answer(
                200, "What was requeued, and what was skipped and why.", schema_ref("RequeueResult")
            ),
        ),
        description="No `job_ids`: the pool's newest dead letters.",
        body=Body(schema_ref("RequeueDead"), REQUEUE_EXAMPLE),
        errors=(400, 404, 413),
    ),
]


def admin_ops() -> list[Op]:
    return [*TENANTS, *KEYS, *OPERATIONS]
