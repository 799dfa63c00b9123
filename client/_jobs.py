"""The native job API's operations (docs/api.md#native-job-api): submit, get, wait, cancel, list,
chat. Each is a generator of effects (``_protocol.py``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from anygate.client._calls import Call
from anygate.client._errors import WaitTimeoutError
from anygate.client._models import Job
from anygate.client._paging import paginate
from anygate.client._protocol import Op, request
from anygate.client._retry import RetryPolicy

Messages = str | Sequence[Mapping[str, Any]]
"""A chat's messages; a str is one user message."""

MAX_POLL_S = 60.0
"""The gateway's default ``server.long_poll_max_s``: the longest one ``?wait=`` may ask."""
POLL_MARGIN_S = 15.0
"""Read timeout beyond a long-poll's own length: the answer comes at its end."""


def job_path(job_id: str, suffix: str = "") -> str:
    if not job_id:
        raise ValueError("job_id: must not be empty")
    return f"/v1/jobs/{quote(job_id, safe='')}{suffix}"


def new_idempotency_key() -> str:
    """One per submit, the same across its retries: a retried submit cannot make two jobs."""
    return f"agc-{uuid.uuid4().hex}"


def submit_call(
    endpoint: str,
    body: Mapping[str, Any],
    *,
    priority: str | None,
    metadata: Mapping[str, str] | None,
    deadline: float | None,
    webhook_url: str | None,
    idempotency_key: str | None,
) -> Call:
    payload: dict[str, Any] = {"endpoint": endpoint, "body": dict(body)}
    options = {
        "priority": priority,
        "metadata": dict(metadata) if metadata is not None else None,
        "deadline": deadline,
        "webhook_url": webhook_url,
    }
    payload.update({k: v for k, v in options.items() if v is not None})
    key = idempotency_key if idempotency_key is not None else new_idempotency_key()
    return Call(
        "POST", "/v1/jobs", json=payload, headers={"idempotency-key": key}, idempotent_write=True
    )


def submit(call: Call, policy: RetryPolicy) -> Op[Job]:
    return Job.from_api((yield from request(call, policy)))


def get(job_id: str, policy: RetryPolicy, *, wait: float | None = None) -> Op[Job]:
    params: dict[str, str | int | float] = {}
    read_timeout = None
    if wait:
        if not 0 < wait <= MAX_POLL_S:
            raise ValueError(f"wait: must be between 0 and {MAX_POLL_S:g} seconds")
        params["wait"] = round(wait, 3)
        read_timeout = wait + POLL_MARGIN_S
    call = Call("GET", job_path(job_id), params=params, read_timeout=read_timeout)
    return Job.from_api((yield from request(call, policy)))


def wait(job_id: str, policy: RetryPolicy, *, timeout: float | None, poll_s: float) -> Op[Job]:
    """Long-poll until the job ends; ``WaitTimeoutError`` (with its last state) after
    ``timeout`` seconds."""
    if not 0 < poll_s <= MAX_POLL_S:
        raise ValueError(f"poll_s: must be between 0 and {MAX_POLL_S:g} seconds")
    if timeout is not None and timeout < 0:
        raise ValueError("timeout: must be 0 or more seconds")
    deadline = None if timeout is None else time.monotonic() + timeout
    job = yield from get(job_id, policy)
    while not job.done:
        left = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
        if left < 0.001:
            raise WaitTimeoutError(
                f"job {job.id} is still {job.status} after {timeout:g} s", job=job
            )
        job = yield from get(job_id, policy, wait=left)
    return job


def cancel(job_id: str, policy: RetryPolicy) -> Op[Job]:
    call = Call("POST", job_path(job_id, "/cancel"), idempotent_write=True)
    return Job.from_api((yield from request(call, policy)))


def list_jobs(
    policy: RetryPolicy, *, status: str | None, page_size: int, limit: int | None
) -> Op[None]:
    params = {"status": status} if status else None
    yield from paginate(
        "/v1/jobs", policy, Job.from_api, params=params, page_size=page_size, limit=limit
    )


def chat_body(model: str, messages: Messages, options: Mapping[str, Any]) -> dict[str, Any]:
    """A chat completion's body."""
    if isinstance(messages, str):
        listed: list[dict[str, Any]] = [{"role": "user", "content": messages}]
    else:
        listed = [dict(m) for m in messages if isinstance(m, Mapping)]
        if not listed or len(listed) != len(messages):
            raise ValueError("messages: expected a str or a non-empty list of message dicts")
    return {**options, "model": model, "messages": listed}


def submit_and_wait(
    call: Call, policy: RetryPolicy, *, timeout: float | None, poll_s: float
) -> Op[Job]:
    job = yield from submit(call, policy)
    if job.done:
        return job
    return (yield from wait(job.id, policy, timeout=timeout, poll_s=poll_s))
