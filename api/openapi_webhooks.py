"""``/openapi.json``'s ``webhooks``: what the control plane POSTs to a ``webhook_url`` when a job
or batch ends, and to a budget webhook when a threshold is crossed (docs/api.md#webhooks,
#budget-warnings). Sent by ``workers/webhooks.py``: the envelope ``{"type", "data"}`` and three
headers, the same for every kind."""

from __future__ import annotations

from anygate.api.openapi_jsonschema import INT, NUM, STR, const, obj
from anygate.api.openapi_table import JSON, schema_ref
from anygate.broker import JobStatus

JOB_EVENTS = [f"job.{s.value}" for s in JobStatus if s.terminal]
BATCH_EVENTS = [f"batch.{s}" for s in ("completed", "failed", "expired", "cancelled")]
"""``workers/control.py``: ``job.<status>`` and ``batch.<status>`` of the ended job or batch."""
BUDGET_EVENT = "budget.threshold_crossed"

_HEADERS = (
    ("x-anygate-event", "The event type, as in the body's `type`."),
    ("x-anygate-delivery", "One id for every retry of one delivery: drop duplicates."),
    (
        "x-anygate-signature",
        '`t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under `security.webhook_secret`: '
        "check it, and reject an old `t`.",
    ),
)

BUDGET_WARNING: JSON = obj(
    {
        "object": const("budget_warning"),
        "id": STR,
        "tenant": STR,
        "period": {"enum": ["day", "month"]},
        "period_start": {"type": "string", "format": "date"},
        "measure": {"enum": ["tokens", "usd"]},
        "threshold_pct": INT,
        "used": NUM,
        "budget": NUM,
        "used_ratio": NUM,
        "resets_at": {"type": "string", "format": "date-time"},
    }
)

WEBHOOK_SCHEMAS: dict[str, JSON] = {"BudgetWarning": BUDGET_WARNING}


def _envelope(events: list[str], data: JSON) -> JSON:
    return obj({"type": {"enum": events}, "data": data})


def _delivery(summary: str, op_id: str, body: JSON) -> JSON:
    return {
        "post": {
            "operationId": op_id,
            "summary": summary,
            "tags": ["webhooks"],
            "parameters": [
                {"name": name, "in": "header", "required": True, "description": why, "schema": STR}
                for name, why in _HEADERS
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "2XX": {"description": "Delivered."},
                "default": {
                    "description": "Anything else, or no answer within 10 s: retried with "
                    "full-jitter exponential backoff, 8 tries in all."
                },
            },
        }
    }


def webhooks() -> JSON:
    return {
        "jobEnded": _delivery(
            "A job with a `webhook_url` ended", "jobEnded", _envelope(JOB_EVENTS, schema_ref("Job"))
        ),
        "batchEnded": _delivery(
            "A batch with a `webhook_url` ended",
            "batchEnded",
            _envelope(BATCH_EVENTS, schema_ref("Batch")),
        ),
        "budgetThresholdCrossed": _delivery(
            "A tenant's budget crossed a threshold (once per threshold per period)",
            "budgetThresholdCrossed",
            _envelope([BUDGET_EVENT], schema_ref("BudgetWarning")),
        ),
    }
