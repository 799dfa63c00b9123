"""The Dead letters page (docs/console.md#dead-letters): a pool's jobs that failed for good,
newest first, one inspected, and requeued by selection or one at a time.

The listing and the requeue are the admin API's own functions (``dead_letter_page``,
``requeue_dead_letters`` in ``anygate.api.admin_ops``): the same validation, the same script
calls and the same audit line, with ``via="console"``. Each job's full page is the Jobs page
(``/ui/jobs/{id}``); the essentials of its failure are shown here too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.admin_ops import (
    dead_letter_page,
    dead_letter_pools,
    dead_letters_of,
    requeue_dead_letters,
)
from anygate.api.console.guard import Console, console_view
from anygate.api.console.render import render
from anygate.broker import JobRecord
from anygate.broker.dead_letters import REQUEUE_MAX
from anygate.broker.errors import InvalidRequestError, NotFoundError

VIA = "console"
PAGE_SIZE = 25

REASONS = {
    "not_dead": "no longer a dead letter (already requeued, or it ran again)",
    "expired": "its record expired",
    "tenant_deleted": "its tenant was deleted",
    "client_key_gone": "it was paid with the client's own provider key, deleted when it ended",
}
"""What each skip reason of the requeue means, in words; an unknown one is shown as is."""


def when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pool(request: Request, console: Console) -> str:
    pools = dead_letter_pools(console.gw)
    return request.query_params.get("pool") or (pools[0] if pools else "")


async def _list(request: Request, console: Console) -> Response:
    pool = _pool(request, console)
    after = request.query_params.get("after") or None
    jobs, has_more = await dead_letter_page(request, console.gw, pool, after=after, limit=PAGE_SIZE)
    return render(
        request,
        "dead_letters.html",
        session=console.session,
        section="dead",
        pools=dead_letter_pools(console.gw),
        pool=pool,
        jobs=jobs,
        has_more=has_more,
        after=after,
        when=when,
        requeue_max=REQUEUE_MAX,
    )


async def _inspect(request: Request, console: Console) -> Response:
    pool, job_id = request.path_params["pool"], request.path_params["job_id"]
    if pool not in dead_letter_pools(console.gw):
        raise NotFoundError(f"No pool named '{pool}'.", param="pool", code="pool_not_found")
    found = await dead_letters_of(request, console.gw).entry(pool, job_id)
    if found is None:
        raise NotFoundError(
            f"No job '{job_id}' in pool '{pool}' (its record may have expired).",
            param="job_id",
            code="job_not_found",
        )
    record, kept, listed = found
    job: dict[str, Any] = JobRecord.from_hash(job_id, record).to_api()
    return render(
        request,
        "dead_letter.html",
        session=console.session,
        section="dead",
        pool=pool,
        job=job,
        tenant=record.get("tenant"),
        requeueable=kept and listed,
        listed=listed,
        kept=kept,
        when=when,
    )


async def _requeue(request: Request, console: Console) -> Response:
    form = await request.form()
    pool = form.get("pool")
    ids = [j for j in form.getlist("job_id") if isinstance(j, str)]
    body: dict[str, Any] = {"pool": pool if isinstance(pool, str) else ""}
    if not form.get("all"):
        if not ids:
            raise InvalidRequestError("job_id: select at least one job to requeue", param="job_id")
        body["job_ids"] = ids
    outcome = await requeue_dead_letters(request, console.gw, console.actor, body, via=VIA)
    return render(
        request,
        "dead_letters_requeued.html",
        session=console.session,
        section="dead",
        outcome=outcome,
        reasons=REASONS,
    )


ROUTES = [
    Route("/dead-letters", console_view(_list), methods=["GET"]),
    Route("/dead-letters/requeue", console_view(_requeue), methods=["POST"]),
    Route("/dead-letters/{pool}/{job_id}", console_view(_inspect), methods=["GET"]),
]
