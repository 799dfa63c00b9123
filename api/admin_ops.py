"""The admin API's operations side (docs/api.md#admin-api): usage, queues, workers, pausing a pool,
dead letters. Handlers parse and answer; what they read and change is in
``anygate.broker.admin_queries`` and ``anygate.broker.dead_letters``.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.admin import audit, json_body
from anygate.api.gateway import Gateway, gateway_of
from anygate.api.paging import list_page, page_limit
from anygate.api.responses import JSONResponse
from anygate.api.usage import csv_response, day_range
from anygate.broker import JobRecord
from anygate.broker.admin_queries import AdminQueries
from anygate.broker.dead_letters import REQUEUE_MAX, DeadLetters, requeue_refusal
from anygate.broker.errors import InvalidRequestError, NotFoundError
from anygate.broker.tenants import TenantRecord
from anygate.core.body import validate


def _queries(gw: Gateway) -> AdminQueries:
    return AdminQueries(gw.redis, gw.broker.keys)


def dead_letters_of(request: Request, gw: Gateway) -> DeadLetters:
    """One per process, made on first use: it binds the script it calls to the client."""
    state = request.app.state
    dead: DeadLetters | None = getattr(state, "dead_letters", None)
    if dead is None:
        dead = DeadLetters(gw.redis, gw.broker.keys)
        state.dead_letters = dead
    return dead


def _pools(gw: Gateway) -> list[str]:
    """A pool per configured provider."""
    return sorted(gw.config.providers)


def _known_pool(gw: Gateway, pool: str | None, param: str = "pool") -> str:
    if not pool:
        raise InvalidRequestError(f"{param}: required, one of {_pools(gw)}", param=param)
    if pool not in gw.config.providers:
        raise NotFoundError(
            f"No pool named '{pool}' (pools: {', '.join(_pools(gw))}).",
            param=param,
            code="pool_not_found",
        )
    return pool


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- usage ----------------------------------------------------------------------------------


def usage_range(request: Request, today: date) -> list[date]:
    """``from`` and ``to`` (UTC days, both included); today when neither is given, and up to
    today from a ``from`` alone."""
    return day_range(request, "from", "to", today)


async def usage(request: Request) -> Response:
    """Rows per tenant, model and UTC day: requests, tokens, cost (what finish-5.lua counted);
    as JSON, or with ``format=csv`` as CSV with the same fields."""
    gw = gateway_of(request)
    await gw.auth.admin(request)
    days = usage_range(request, datetime.now(UTC).date())
    form = request.query_params.get("format") or "json"
    if form not in {"json", "csv"}:
        raise InvalidRequestError("format: json or csv", param="format")
    queries = _queries(gw)
    tenant = request.query_params.get("tenant")
    tenants = [tenant] if tenant else await queries.tenant_ids()
    rows = await queries.usage(tenants, days)
    if form == "csv":
        return csv_response(rows, days)
    return list_page(
        [r.to_api() for r in rows],
        False,
        **{"from": days[0].isoformat(), "to": days[-1].isoformat()},
    )


# --- queues and workers ---------------------------------------------------------------------


async def queues(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.admin(request)
    queries = _queries(gw)
    lanes, truncated = await queries.lanes()
    pools = sorted({*_pools(gw), *(lane.name.pool for lane in lanes)})
    counts = await queries.pool_counts(pools)
    now = _now_ms()
    data = []
    for pool in pools:
        c = counts[pool]
        data.append(
            {
                "object": "queue",
                "id": pool,
                "paused": c.paused is not None,
                "paused_at": c.paused.get("at") if c.paused else None,
                "queued": c.queued,
                "in_flight": c.in_flight,
                "delayed": c.delayed,
                "redeliver": c.redeliver,
                "dead_letters": c.dead_letters,
                "lanes": [lane.to_api(now) for lane in lanes if lane.name.pool == pool],
            }
        )
    return list_page(data, False, lanes_truncated=truncated)


async def workers(request: Request) -> Response:
    """Every registered worker; ``alive`` when its heartbeat is younger than three intervals
    (a dead worker stays listed, not alive, until reclaim forgets it)."""
    gw = gateway_of(request)
    await gw.auth.admin(request)
    pools = _pools(gw)
    registry = await _queries(gw).workers(pools)
    within_ms = int(3 * gw.config.queue.heartbeat_interval_s * 1000)
    now = _now_ms()
    data = []
    for pool in pools:
        listed = [w.to_api(now, within_ms) for w in registry[pool]]
        data.append(
            {
                "object": "pool",
                "id": pool,
                "workers": listed,
                "alive": sum(1 for w in listed if w["alive"]),
                "concurrency": sum(w["concurrency"] for w in listed if w["alive"]),
            }
        )
    return list_page(data)


async def set_pool_paused(gw: Gateway, actor: str, pool: str, paused: bool, **via: str) -> str:
    """Pause or resume a pool, and write the audit line: the admin API and the console both
    come here, so the check and the line are the same (``via`` says which one, if not the API).
    Running jobs finish; queued ones stay queued; submissions are still accepted."""
    pool = _known_pool(gw, pool)
    if paused:
        await _queries(gw).pause(pool, actor)
    else:
        await _queries(gw).resume(pool)
    audit(actor, "pool.pause" if paused else "pool.resume", pool, **via)
    return pool


async def pause_pool(request: Request) -> Response:
    """Running jobs finish; queued ones stay queued; submissions are still accepted."""
    gw = gateway_of(request)
    actor = await gw.auth.admin(request)
    pool = await set_pool_paused(gw, actor, request.path_params["pool"], True)
    return JSONResponse({"object": "pool", "id": pool, "paused": True})


async def resume_pool(request: Request) -> Response:
    gw = gateway_of(request)
    actor = await gw.auth.admin(request)
    pool = await set_pool_paused(gw, actor, request.path_params["pool"], False)
    return JSONResponse({"object": "pool", "id": pool, "paused": False})


# --- dead letters ---------------------------------------------------------------------------


def dead_letter_pools(gw: Gateway) -> list[str]:
    """The pools whose dead letters may be listed: one per configured provider."""
    return _pools(gw)


async def dead_letter_page(
    request: Request, gw: Gateway, pool: str | None, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the pool's dead letters, newest first, as job objects with their tenant and
    whether they can be requeued; and whether more follow. Shared with the console."""
    known = _known_pool(gw, pool)
    found, has_more = await dead_letters_of(request, gw).page(known, after=after, limit=limit)
    data = [
        {**JobRecord.from_hash(job_id, h).to_api(), "tenant": h.get("tenant"), "requeueable": kept}
        for job_id, h, kept in found
    ]
    return data, has_more


async def dead_letters(request: Request) -> Response:
    """Jobs that failed for good in the pool, newest first (job objects, with their tenant and
    whether they can be requeued)."""
    gw = gateway_of(request)
    await gw.auth.admin(request)
    data, has_more = await dead_letter_page(
        request,
        gw,
        request.query_params.get("pool"),
        after=request.query_params.get("after") or None,
        limit=page_limit(request),
    )
    return list_page(data, has_more)


class RequeueDead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pool: str
    job_ids: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=128)]],
            Field(min_length=1, max_length=REQUEUE_MAX),
        ]
        | None
    ) = None
    """Absent: the newest ``REQUEUE_MAX`` dead letters of the pool."""


async def requeue_dead_letters(
    request: Request, gw: Gateway, actor: str, body: dict[str, Any], *, via: str | None = None
) -> dict[str, Any]:
    """Each job back in its lane as a fresh queued job; one that is no longer dead, whose
    record expired or that cannot run again is skipped, with the reason. The admin API and
    the console both requeue through here (the console's audit line adds ``via``)."""
    spec = validate(RequeueDead, body)
    pool = _known_pool(gw, spec.pool)
    dead = dead_letters_of(request, gw)
    ids = list(dict.fromkeys(spec.job_ids)) if spec.job_ids else await dead.newest_ids(pool)
    skipped: list[dict[str, str]] = []
    tenants: dict[str, TenantRecord | None] = {}
    for job_id, tenant in (await dead.job_tenants(pool, ids)).items():
        if tenant not in tenants:
            tenants[tenant] = await gw.tenants.get_tenant(tenant)
        reason = requeue_refusal(tenants[tenant])
        if reason is not None:
            skipped.append({"id": job_id, "reason": reason})
    refused = {s["id"] for s in skipped}
    # a job whose record expired goes to the script too, which drops it from the list
    outcome = await dead.requeue(pool, [j for j in ids if j not in refused])
    skipped += [{"id": j, "reason": r} for j, r in outcome.skipped]
    if outcome.requeued:
        details = {"via": via} if via else {}
        audit(actor, "dead_letters.requeue", pool, jobs=len(outcome.requeued), **details)
    order = {j: n for n, j in enumerate(ids)}
    skipped.sort(key=lambda s: order[s["id"]])
    return {
        "object": "dead_letters.requeue",
        "pool": pool,
        "requeued": outcome.requeued,
        "skipped": skipped,
    }


async def requeue_dead(request: Request) -> Response:
    gw = gateway_of(request)
    actor = await gw.auth.admin(request)
    body = await json_body(request, gw)
    return JSONResponse(await requeue_dead_letters(request, gw, actor, body))


ROUTES = [
    Route("/admin/usage", usage, methods=["GET"]),
    Route("/admin/queues", queues, methods=["GET"]),
    Route("/admin/workers", workers, methods=["GET"]),
    Route("/admin/pools/{pool}/pause", pause_pool, methods=["POST"]),
    Route("/admin/pools/{pool}/resume", resume_pool, methods=["POST"]),
    Route("/admin/dead-letters", dead_letters, methods=["GET"]),
    Route("/admin/dead-letters/requeue", requeue_dead, methods=["POST"]),
]
