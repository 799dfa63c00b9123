"""The Jobs pages (docs/console.md#jobs): find a job by id (any tenant) or list a tenant's jobs,
and one job's record and timeline, live over SSE until it ends, with a cancel button.

A job is found without its tenant (the operator pastes an id from a log line): its record
names the tenant, and everything after that goes through the tenant's own calls, the ones the
API makes (``broker.get``, ``cancel_tenant_job``). Listing needs the tenant: the broker keeps
one index per tenant (``JobQueue.list_jobs``). What is never shown: the request body (the API
does not expose it to admins either), the result's content, a client's provider key (BYOK;
the record does not hold it, the encrypted copy lives apart).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from anygate.api.admin import audit
from anygate.api.console.guard import Console, console_view
from anygate.api.console.job_timeline import TITLES, attempts_of, build_timeline, when
from anygate.api.console.live import live_fragments
from anygate.api.console.render import PREFIX, fragment, render
from anygate.api.gateway import Gateway
from anygate.api.jobs import cancel_tenant_job, status_filter
from anygate.broker import JobEvent, JobRecord, JobStatus
from anygate.broker.connection import awaited
from anygate.broker.errors import InvalidRequestError, NotFoundError
from anygate.broker.routing import decode_plan
from anygate.config.model import TENANT_ID_PATTERN

PAGE = 50
MAX_SCANNED_PAGES = 10
"""A model filter reads at most this many of the broker's pages for one page of the console."""
JOB_ID = re.compile(r"^job_[A-Za-z0-9_.-]{1,200}$")


def job_not_found(job_id: str) -> NotFoundError:
    return NotFoundError(f"No job found with id '{job_id}'.", param="id", code="job_not_found")


@dataclass(frozen=True, slots=True)
class FoundJob:
    record: JobRecord
    first_deployment: str
    """``provider:model`` of the route's first step (what attempt 1 called)."""


async def find_job(gw: Gateway, job_id: str) -> FoundJob | None:
    """The job whatever its tenant, read as its tenant would read it."""
    if not JOB_ID.match(job_id):
        return None
    space = await gw.broker.queue.locate(job_id)
    tenant, plan = await awaited(gw.redis.hmget(space.job(job_id), ["tenant", "plan"]))
    if not tenant:
        return None
    record = await gw.broker.get(tenant, job_id)
    if record is None:
        return None
    first = ""
    if plan:
        steps = decode_plan(plan)
        if steps and len(steps[0]) >= 3:
            first = f"{steps[0][1]}:{steps[0][2]}"
    return FoundJob(record, first or f"{record.pool}:{record.model}")


# --- finding jobs ---------------------------------------------------------------------------


def tenant_filter(tenant: str) -> str:
    """A ``tenant`` filter (the Jobs and Batches pages): empty, or a well-formed tenant id."""
    if tenant and not re.match(TENANT_ID_PATTERN, tenant):
        raise InvalidRequestError(
            "tenant: letters, digits, '_' and '-', 1 to 64 characters", param="tenant"
        )
    return tenant


@dataclass(frozen=True, slots=True)
class JobQuery:
    tenant: str
    status: JobStatus | None
    model: str
    after: str | None

    @classmethod
    def parse(cls, params: dict[str, str]) -> JobQuery:
        tenant = tenant_filter(params.get("tenant", "").strip())
        status = status_filter(params.get("status"))
        if (status is not None or params.get("model")) and not tenant:
            raise InvalidRequestError(
                "tenant: jobs are listed per tenant; name one to filter by status or model",
                param="tenant",
            )
        model = params.get("model", "").strip()[:200]
        return cls(tenant, status, model, params.get("after") or None)


async def search(gw: Gateway, query: JobQuery) -> tuple[list[JobRecord], str | None]:
    """A page of the tenant's jobs (newest first) matching the filters, and the cursor of the
    next page (None at the end). The broker filters by status; the model is filtered here,
    reading further pages until this one is full."""
    found: list[JobRecord] = []
    after = query.after
    for _ in range(MAX_SCANNED_PAGES):
        records, has_more = await gw.broker.list_jobs(
            query.tenant, status=query.status, limit=PAGE, after=after
        )
        for i, record in enumerate(records):
            if not query.model or record.model == query.model:
                found.append(record)
                if len(found) == PAGE:
                    more = has_more or i < len(records) - 1
                    return found, record.id if more else None
        if not has_more or not records:
            return found, None
        after = records[-1].id
    return found, after


async def _jobs(request: Request, console: Console) -> Response:
    params = dict(request.query_params)
    job_id = params.get("id", "").strip()
    context: dict[str, Any] = {"params": params, "records": None, "next_after": None}
    error: InvalidRequestError | NotFoundError | None = None
    status_code = 200
    if job_id:
        if await find_job(console.gw, job_id) is not None:
            return RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303)
        error, status_code = job_not_found(job_id), 404
    elif params.get("tenant") or params.get("status") or params.get("model"):
        try:
            query = JobQuery.parse(params)
        except InvalidRequestError as exc:
            error, status_code = exc, 400
        else:
            context["records"], context["next_after"] = await search(console.gw, query)
    return render(
        request,
        "jobs.html",
        session=console.session,
        section="jobs",
        status_code=status_code,
        error=error,
        statuses=[s.value for s in JobStatus],
        when=when,
        **context,
    )


# --- one job ---------------------------------------------------------------------------------


class JobWatch:
    """A job's page state, read again on each tick of its live stream: the record, and the
    event log read on from where the last tick stopped (a long stream is read once)."""

    def __init__(self, gw: Gateway, found: FoundJob) -> None:
        self._gw = gw
        self.found = found
        self.events: list[JobEvent] = []

    @property
    def record(self) -> JobRecord:
        return self.found.record

    async def refresh(self) -> None:
        record = await self._gw.broker.get(self.record.tenant, self.record.id)
        if record is not None:
            self.found = FoundJob(record, self.found.first_deployment)
        last = self.events[-1].id if self.events else None
        self.events.extend(await self._gw.broker.events_after(self.record.id, last))

    def context(self) -> dict[str, Any]:
        timeline = build_timeline(
            self.events,
            created_ms=self.record.created_ms,
            history=self.record.history,
            first_deployment=self.found.first_deployment,
        )
        return {
            "job": self.record,
            "timeline": timeline,
            "started_attempts": attempts_of(timeline),
            "titles": TITLES,
            "when": when,
        }

    def fragments(self, csrf: str) -> list[tuple[str, str]]:
        context = {**self.context(), "csrf": csrf}
        return [
            ("job-record", fragment("job_record.html", **context)),
            ("job-timeline", fragment("job_timeline.html", **context)),
        ]


async def _watch(request: Request, console: Console) -> JobWatch:
    job_id = request.path_params["job_id"]
    found = await find_job(console.gw, job_id)
    if found is None:
        raise job_not_found(job_id)
    watch = JobWatch(console.gw, found)
    await watch.refresh()
    return watch


async def _job(request: Request, console: Console) -> Response:
    watch = await _watch(request, console)
    return render(
        request,
        "job.html",
        session=console.session,
        section="jobs",
        **watch.context(),
    )


async def _job_stream(request: Request, console: Console) -> Response:
    watch = await _watch(request, console)

    async def fragments() -> list[tuple[str, str]]:
        await watch.refresh()
        return watch.fragments(console.session.csrf)

    return live_fragments(
        request, console, fragments, every_s=1.0, finished=lambda: watch.record.status.terminal
    )


async def _cancel(request: Request, console: Console) -> Response:
    """The API's cancel (``cancel_tenant_job``) as the job's tenant, with the audit line."""
    job_id = request.path_params["job_id"]
    found = await find_job(console.gw, job_id)
    if found is None:
        raise job_not_found(job_id)
    tenant = found.record.tenant
    await cancel_tenant_job(console.gw, tenant, job_id)
    audit(console.actor, "job.cancel", job_id, via="console", tenant=tenant)
    return RedirectResponse(f"{PREFIX}/jobs/{job_id}", status_code=303)


ROUTES = [
    Route("/jobs", console_view(_jobs), methods=["GET"]),
    Route("/jobs/{job_id}", console_view(_job), methods=["GET"]),
    Route("/jobs/{job_id}/stream", console_view(_job_stream), methods=["GET"]),
    Route("/jobs/{job_id}/cancel", console_view(_cancel), methods=["POST"]),
]
