"""The native job API (docs/api.md#native-job-api): submit, poll, long-poll, SSE events, cancel,
list."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from anygate.api.batches import require_webhook_secret
from anygate.api.gateway import Gateway, gateway_of
from anygate.api.paging import list_page, page_limit
from anygate.api.provider_keys import client_provider_key
from anygate.api.request_body import read_body
from anygate.api.responses import SSE_KEEPALIVE, JSONResponse
from anygate.broker import (
    JobEvent,
    JobRecord,
    JobStatus,
    NewJob,
    format_stream_id,
    new_job_id,
    parse_stream_id,
    stream_id_key,
)
from anygate.broker.errors import InvalidRequestError, NotFoundError
from anygate.broker.notify import RESYNC
from anygate.broker.redis_link import is_outage
from anygate.broker.routing import encode_plan
from anygate.broker.scheduling import estimated_start_ms
from anygate.core.body import parse_json_object, validate
from anygate.core.parking import parking
from anygate.core.schemas import BODY_MODELS, SubmitJob
from anygate.telemetry import count_execution, tracing

log = structlog.get_logger(__name__)

MAX_IDEMPOTENCY_KEY = 255
MAX_DEADLINE = 253_402_300_800.0
"""Year 10000 in Unix seconds: a larger ``deadline`` would overflow when made milliseconds."""


def _not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"No job found with id '{job_id}'.", param="id", code="job_not_found")


async def submit_job(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "jobs")
    data = parse_json_object(
        await read_body(request, gw.config.server.max_body_bytes), gw.config.server.max_json_depth
    )
    spec = validate(SubmitJob, data)
    validate(BODY_MODELS[spec.endpoint], spec.body, prefix="body")
    require_webhook_secret(gw.config, spec.webhook_url)
    model = spec.body["model"]
    steps = await gw.planner.plan(spec.endpoint, spec.body)
    client_key, steps = client_provider_key(request, tenant, steps, gw.config)
    deadline_ms = 0
    if spec.deadline is not None:
        if spec.deadline <= time.time():
            raise InvalidRequestError("deadline: must be in the future", param="deadline")
        if spec.deadline >= MAX_DEADLINE:  # also catches milliseconds sent for seconds
            raise InvalidRequestError(
                "deadline: expected a Unix time in seconds before the year 10000",
                param="deadline",
            )
        deadline_ms = int(spec.deadline * 1000)
    idem = request.headers.get("idempotency-key")
    if idem is not None and not 0 < len(idem) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidRequestError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
            param="Idempotency-Key",
        )
    is_chat = spec.endpoint == "/v1/chat/completions"
    place = parking(
        gw.config,
        steps[0],
        spec.endpoint,
        deadline_ms=deadline_ms,
        opted_in=tenant.provider_batches,
        client_key=client_key is not None,
        now_ms=int(time.time() * 1000),
    )
    count_execution(place.choice.execution, place.choice.because)
    job = NewJob(
        tenant=tenant.id,
        pool=steps[0].provider,
        endpoint=spec.endpoint,
        model=model,
        body=orjson.dumps(spec.body),
        priority=spec.priority,
        stream=is_chat,
        metadata=spec.metadata or {},
        deadline_ms=deadline_ms,
        webhook_url=spec.webhook_url or "",
        tenant_weight=tenant.weight,
        quotas=tenant.quotas,
        client_key=client_key,
        idempotency_key=idem,
        plan=encode_plan(steps, alias=model),
        trace=tracing.spans.carrier() if tracing.enabled else "",
        parked_for=place.queue,
        cutoff_ms=place.cutoff_ms,
    )
    enqueued = await gw.broker.enqueue(
        job, new_job_id(gw.broker.keys.shard_of_pool(job.pool))
    )  # 409 on a reused Idempotency-Key
    if enqueued.created:
        record = JobRecord.queued(enqueued.job_id, job, enqueued.created_ms)
    else:
        found = await gw.broker.get(tenant.id, enqueued.job_id)
        if found is None:  # the first job expired between the two reads
            raise _not_found(enqueued.job_id)
        record = found
    body = record.to_api()
    if record.status is JobStatus.QUEUED and enqueued.created and not place.parked:
        eta = estimated_start_ms(
            enqueued.place,
            enqueued.queued_in_pool,
            enqueued.worker_slots,
            enqueued.mean_service_ms,
            enqueued.created_ms,
        )
        body["queue_position"] = enqueued.place
        body["estimated_start_at"] = eta / 1000 if eta is not None else None
    headers = {"location": f"/v1/jobs/{record.id}", "x-anygate-job-id": record.id}
    if not enqueued.created:
        headers["idempotent-replayed"] = "true"
    return JSONResponse(body, status_code=202, headers=headers)


async def get_job(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "jobs")
    job_id = request.path_params["job_id"]
    wait = _wait_seconds(request, gw.config.server.long_poll_max_s)
    record = await gw.broker.get(tenant.id, job_id)
    if record is None:
        raise _not_found(job_id)
    if wait > 0 and not record.status.terminal:
        record = await _wait_terminal(gw, tenant.id, record, wait)
    return JSONResponse(record.to_api(), headers={"x-anygate-job-id": job_id})


def _wait_seconds(request: Request, cap: float) -> float:
    raw = request.query_params.get("wait")
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise InvalidRequestError("wait: expected a number of seconds", param="wait") from None
    if not 0 <= value <= cap or math.isnan(value):
        raise InvalidRequestError(f"wait: must be between 0 and {cap:g} seconds", param="wait")
    return value


async def _wait_terminal(gw: Gateway, tenant: str, record: JobRecord, wait: float) -> JobRecord:
    """Subscribe, then re-read: a completion between the first read and the subscription is seen.

    Waking costs Redis nothing of the waiter's own (its channel's subscription is shared, see
    ``broker/notify.py``); the record it answers with is read with the other waiters woken in
    the same loop turn, in one pipeline."""
    channel = gw.broker.keys.job_channel(record.id)
    read = gw.broker.queue.get_woken
    async with gw.subscriptions.subscribe(channel) as queue:
        fresh = await read(tenant, record.id)
        if fresh is None or fresh.status.terminal:
            return fresh or record
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                message = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                break
            if message == RESYNC:  # the channel was lost a while: the job may have ended
                fresh = await read(tenant, record.id)
                if fresh is None or fresh.status.terminal:
                    break
                continue
            if JobEvent.from_message(message).terminal:
                break
    return await read(tenant, record.id) or record


async def job_events(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "jobs")
    job_id = request.path_params["job_id"]
    last = _resume_after(request)
    record = await gw.broker.get(tenant.id, job_id)
    if record is None:
        raise _not_found(job_id)
    return StreamingResponse(
        _event_stream(gw, job_id, last, ended=record.status.terminal),
        media_type="text/event-stream",
        headers={
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            "x-anygate-job-id": job_id,
        },
    )


def _resume_after(request: Request) -> str | None:
    """The event id to resume after: the ``Last-Event-ID`` header (an EventSource sends it
    on reconnecting, whatever the URL's ``?after=`` says), else ``?after=``; checked in full
    here, before any byte of the stream is sent, and returned in its canonical spelling."""
    param, raw = "Last-Event-ID", request.headers.get("last-event-id")
    if not raw:
        param, raw = "after", request.query_params.get("after")
    if not raw:
        return None
    try:
        return format_stream_id(parse_stream_id(raw))
    except ValueError as exc:
        raise InvalidRequestError(
            f"{param}: expected an event id such as 1700000000000-0 ({exc})", param=param
        ) from None


def _sse(event: JobEvent) -> bytes:
    """One event as SSE. A chunk's data is the OpenAI ``chat.completion.chunk`` with the
    ``attempt`` it came from: after a ``retry`` event, what earlier attempts sent is void."""
    data = event.data
    if event.type == "chunk" and event.attempt is not None and data.startswith("{"):
        rest = data[1:].lstrip()
        data = f'{{"attempt":{event.attempt}{"," if rest != "}" else ""}{rest}'
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


async def _event_stream(
    gw: Gateway, job_id: str, last: str | None, *, ended: bool
) -> AsyncIterator[bytes]:
    """The SSE body: ends (the client reconnects with ``Last-Event-ID``) when Redis is away;
    the response has started, so no status can say so."""
    try:
        async for piece in _events(gw, job_id, last, ended=ended):
            yield piece
    except Exception as exc:
        if not is_outage(exc):
            raise
        log.info("event stream ended: redis is away", job_id=job_id, error=type(exc).__name__)


async def _events(
    gw: Gateway, job_id: str, last: str | None, *, ended: bool
) -> AsyncIterator[bytes]:
    """Replay the log after ``last``, then follow live events; each sent once, in order.

    A job that had ended before the request has its whole log written (one script sets the
    status and appends the final event), so after the replay nothing is left to wait for, even
    when ``last`` already was its final event: an EventSource reconnecting after the end gets
    an empty stream that ends, not keep-alives forever. After a lost connection to Redis the
    log is read again from the last event sent. What the log holds was read with a command, so
    it is durable in strict mode; a live terminal event waits for the barrier."""
    channel = gw.broker.keys.job_channel(job_id)
    keepalive_s = gw.config.server.keepalive_s
    async with gw.subscriptions.subscribe(channel) as queue:
        cursor = stream_id_key(last) if last else (-1, -1)
        for event in await gw.broker.events_after(job_id, last):
            yield _sse(event)
            last, cursor = event.id, stream_id_key(event.id)
            if event.terminal:
                return
        if ended:
            return
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), keepalive_s)
            except TimeoutError:
                yield SSE_KEEPALIVE
                continue
            if message == RESYNC:
                events = await gw.broker.events_after(job_id, last)
            else:
                events = [JobEvent.from_message(message)]
                if events[0].terminal and not await _durable(gw, job_id):
                    return  # the client reconnects with Last-Event-ID and reads the end
            for event in events:
                key = stream_id_key(event.id)
                if key <= cursor:
                    continue  # already sent (from the replayed log)
                yield _sse(event)
                last, cursor = event.id, key
                if event.terminal:
                    return


async def _durable(gw: Gateway, job_id: str) -> bool:
    """Strict mode: the job's end, read from pub/sub, is on disk before a client hears of it
    (``broker/durability.py``); False when Redis cannot confirm it."""
    try:
        await gw.barrier()
    except (RedisError, OSError) as exc:
        log.warning("event stream end unconfirmed", job_id=job_id, error=type(exc).__name__)
        return False
    return True


async def cancel_tenant_job(gw: Gateway, tenant: str, job_id: str) -> JobRecord:
    """Cancel the tenant's job if it is still queued or running, and answer it as it is now
    (a job that had ended stays as it ended). ``POST /v1/jobs/{id}/cancel`` and the console's
    cancel button both come here, so they behave the same; 404 for another tenant's job."""
    if not await gw.broker.cancel(tenant, job_id):
        raise _not_found(job_id)
    record = await gw.broker.get(tenant, job_id)
    if record is None:
        raise _not_found(job_id)
    return record


async def cancel_job(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "jobs")
    job_id = request.path_params["job_id"]
    record = await cancel_tenant_job(gw, tenant.id, job_id)
    return JSONResponse(record.to_api(), headers={"x-anygate-job-id": job_id})


def status_filter(value: str | None) -> JobStatus | None:
    """A ``status`` filter (the jobs list, the console's search): a job status, or none."""
    if not value:
        return None
    try:
        return JobStatus(value)
    except ValueError:
        raise InvalidRequestError(
            f"status: expected one of {[s.value for s in JobStatus]}", param="status"
        ) from None


async def list_jobs(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "jobs")
    params = request.query_params
    status = status_filter(params.get("status"))
    limit = page_limit(request)
    records, has_more = await gw.broker.list_jobs(
        tenant.id, status=status, limit=limit, after=params.get("after") or None
    )
    data: list[dict[str, Any]] = [r.to_api() for r in records]
    return list_page(data, has_more)


ROUTES = [
    Route("/v1/jobs", submit_job, methods=["POST"]),
    Route("/v1/jobs", list_jobs, methods=["GET"]),
    Route("/v1/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}/events", job_events, methods=["GET"]),
    Route("/v1/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
]
