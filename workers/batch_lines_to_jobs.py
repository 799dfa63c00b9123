"""One input line of a batch → a job, or the error-file line that says why it cannot be one.

Pure but for the planner (which reads live deployment figures): the driver feeds it each line
of a chunk and enqueues what comes back. Every check the synchronous surfaces make is made
here too, so a batch line fails the same way a direct call would, with its custom_id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from anygate.broker import NewJob
from anygate.broker.errors import AnygateError
from anygate.broker.routing import Step, encode_plan
from anygate.config import Priority, TenantQuotas
from anygate.core.body import validate
from anygate.core.parking import Parking
from anygate.core.planning import Planner
from anygate.core.schemas import BODY_MODELS


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    custom_id: str | None
    code: str
    message: str

    def error_line(self) -> dict[str, Any]:
        """OpenAI's error-file line for a request that was never sent."""
        return {
            "id": f"batch_req_line{self.line}",
            "custom_id": self.custom_id,
            "response": None,
            "error": {"code": self.code, "message": f"line {self.line}: {self.message}"},
        }


@dataclass(frozen=True, slots=True)
class BatchContext:
    batch_id: str
    tenant: str
    tenant_weight: int
    quotas: TenantQuotas
    endpoint: str
    keep_s: int
    window_end_ms: int = 0
    """The completion window's end: a line's deadline when it may wait for a provider batch."""
    provider_batches: bool = False
    """The tenant opted in to provider batches (``TenantSettings.provider_batches``)."""


def idempotency_key(batch_id: str, line: int) -> str:
    """Expansion can repeat a chunk after a crash: the same line maps to the same job."""
    return f"batch:{batch_id}:{line}"


async def line_to_job(
    ctx: BatchContext,
    line: int,
    raw: bytes,
    planner: Planner,
    known_bad: dict[int, str],
    *,
    choose: Callable[[Step], Parking] | None = None,
) -> NewJob | Rejected:
    """``choose``: whether the line's job waits for a provider batch, given its route's first
    step (``core/parking.py``); None: every line goes live."""
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejected(line, None, "invalid_json", "not valid JSON")
    custom_id = item.get("custom_id") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not isinstance(custom_id, str):
        return Rejected(line, None, "invalid_request", "not a request object with a custom_id")
    if line in known_bad:
        return Rejected(line, custom_id, "invalid_request", known_bad[line])
    if item.get("url") != ctx.endpoint:
        message = f"url {item.get('url')!r} is not the batch's endpoint {ctx.endpoint}"
        return Rejected(line, custom_id, "invalid_url", message)
    body = item.get("body")
    if not isinstance(body, dict):
        return Rejected(line, custom_id, "invalid_request", "body: must be an object")
    if body.get("stream"):
        return Rejected(line, custom_id, "invalid_request", "body.stream: a batch does not stream")
    try:
        validate(BODY_MODELS[ctx.endpoint], body, prefix="body")
        steps = await planner.plan(ctx.endpoint, body)
    except AnygateError as exc:
        return Rejected(line, custom_id, exc.code or "invalid_request", exc.message)
    model = str(body["model"])
    place = choose(steps[0]) if choose is not None else None
    parked = place is not None and place.parked
    return NewJob(
        tenant=ctx.tenant,
        pool=steps[0].provider,
        endpoint=ctx.endpoint,
        model=model,
        body=orjson.dumps(body),
        priority=Priority.BATCH,
        stream=False,
        tenant_weight=ctx.tenant_weight,
        quotas=ctx.quotas,
        idempotency_key=idempotency_key(ctx.batch_id, line),
        plan=encode_plan(steps, alias=model),
        batch_id=ctx.batch_id,
        custom_id=custom_id,
        keep_s=ctx.keep_s,
        parked_for=place.queue if parked and place else "",
        cutoff_ms=place.cutoff_ms if parked and place else 0,
    )
