"""Traces across processes (docs/tracing.md): the API's and the worker's spans of one request
land in one trace, exported over OTLP/HTTP to a receiver in the test, linked through the
trace context the job carries in Redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from anygate.broker import Broker
from anygate.broker.models import NewJob
from anygate.config import Priority
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.integration.helpers import chat_body, claim_one, enqueue
from tests.support.configs import config_tree
from tests.support.eventually import eventually
from tests.support.jobs import chat_job, submit
from tests.support.mock import MockControl
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.stack import Stack, running_stack

WORKER_SPANS = {"queue wait", "job attempt", "rate limit", "chat gpt-4o-mini"}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver.running() as running:
        yield running


@pytest.fixture
def traced_stack(
    tmp_path: Path,
    redis_server: EmbeddedRedis,
    namespace: str,
    mock: MockControl,
    receiver: OtlpReceiver,
) -> Iterator[Stack]:
    """API and worker exporting traces the standard way (``OTEL_*``), quickly (50 ms)."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    with running_stack(tmp_path, tree, ["openai"], env) as stack:
        yield stack


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in spans]}"
    return found[0]


async def whole_trace(receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    """The trace once the API's request span and all the worker's spans have arrived."""

    def complete() -> list[ReceivedSpan]:
        spans = receiver.spans(trace_id)
        names = {s.name for s in spans}
        kinds = {s.kind for s in spans}
        return spans if names >= WORKER_SPANS and "server" in kinds else []

    return await eventually(complete, what=f"the whole trace {trace_id}", timeout=15)


async def test_a_callers_trace_holds_the_request_and_the_upstream_call(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    """A synchronous call sent with a ``traceparent``: the API's server span is the caller's
    child, and the worker's attempt, queue wait, rate-limit and upstream spans descend from it
    in the same trace, with the GenAI attributes of the call."""
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{caller_span}-01", "tracestate": "caller=1"}
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "trace me"}],
        "max_tokens": 40,
    }
    async with traced_stack.client() as client:
        response = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()

    spans = await whole_trace(receiver, trace_id)
    server = one([s for s in spans if s.kind == "server"], "POST /v1/chat/completions")
    assert (server.service, server.parent_span_id) == ("anygate-api", caller_span)
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "/v1/chat/completions"

    attempt = one(spans, "job attempt")
    wait = one(spans, "queue wait")
    gate = one(spans, "rate limit")
    call = one(spans, "chat gpt-4o-mini")
    assert {attempt.service, wait.service, gate.service, call.service} == {"anygate-worker"}
    assert attempt.parent_span_id == wait.parent_span_id == server.span_id
    assert gate.parent_span_id == call.parent_span_id == attempt.span_id
    assert (attempt.kind, call.kind) == ("consumer", "client")
    assert attempt.attributes["anygate.job.attempt"] == 1
    assert server.start_ns <= wait.start_ns <= wait.end_ns <= attempt.start_ns
    assert attempt.start_ns <= call.start_ns <= call.end_ns <= attempt.end_ns
    assert call.end_ns <= server.end_ns, "the answer came after the call"
    assert gate.attributes["anygate.rate_limit.admitted"] is True

    genai = call.attributes
    assert genai["gen_ai.operation.name"] == "chat"
    assert genai["gen_ai.provider.name"] == genai["gen_ai.system"] == "openai"
    assert genai["gen_ai.request.model"] == "gpt-4o-mini"
    assert genai["gen_ai.request.max_tokens"] == 40
    assert genai["gen_ai.response.model"] == answer["model"]
    assert genai["gen_ai.usage.input_tokens"] == answer["usage"]["prompt_tokens"] > 0
    assert genai["gen_ai.usage.output_tokens"] == answer["usage"]["completion_tokens"] > 0
    assert genai["server.address"] == "127.0.0.1"


async def test_a_request_without_traceparent_begins_a_trace_the_worker_joins(
    traced_stack: Stack, receiver: OtlpReceiver
) -> None:
    """A queued job (native API): a new trace begins at the API (a root span), and the
    worker's spans of that job, claimed later from Redis, join it."""
    async with traced_stack.client() as client:
        job = await submit(client)
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})).json()
    assert done["status"] == "succeeded"

    def attempt_of_job() -> ReceivedSpan | None:
        found = [
            s
            for s in receiver.spans()
            if s.name == "job attempt" and s.attributes.get("anygate.job.id") == job["id"]
        ]
        return found[0] if found else None

    attempt = await eventually(attempt_of_job, what="the job's attempt span", timeout=15)
    spans = await whole_trace(receiver, attempt.trace_id)
    server = one([s for s in spans if s.kind == "server"], "POST /v1/jobs")
    assert server.parent_span_id == "", "no traceparent sent: the API's span is the root"
    assert attempt.parent_span_id == server.span_id
    call = one(spans, "chat gpt-4o-mini")
    assert call.parent_span_id == attempt.span_id
    assert call.attributes["gen_ai.usage.output_tokens"] == done["usage"]["completion_tokens"]


async def test_a_retried_job_shows_each_attempt_and_the_failed_call(
    traced_stack: Stack, receiver: OtlpReceiver, mock: MockControl
) -> None:
    """The provider fails the first call: two attempt spans under the request, the first
    upstream span marked as an error with its type, the second one answered."""
    mock.fault(fault="500", model="gpt-4o-mini", times=1)
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    async with traced_stack.client() as client:
        job = (await client.post("/v1/jobs", json=chat_job(), headers=headers)).json()
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 20})).json()
    assert (done["status"], done["attempts"]) == ("succeeded", 2)

    def both_attempts() -> list[ReceivedSpan]:
        spans = receiver.spans(trace_id)
        names = [s.name for s in spans]
        done = names.count("chat gpt-4o-mini") == names.count("job attempt") == 2
        return spans if done else []

    spans = await eventually(both_attempts, what="two upstream calls", timeout=20)
    attempts = {s.attributes["anygate.job.attempt"]: s for s in spans if s.name == "job attempt"}
    assert sorted(attempts) == [1, 2]
    calls = {attempts[a].span_id: a for a in attempts}
    failed, answered = sorted(
        (s for s in spans if s.name == "chat gpt-4o-mini"), key=lambda s: calls[s.parent_span_id]
    )
    assert (failed.status, answered.status) == ("error", "unset")
    assert failed.attributes["error.type"] == "upstream_error"
    assert "gen_ai.usage.output_tokens" not in failed.attributes
    assert answered.attributes["gen_ai.usage.output_tokens"] > 0
    assert len([s for s in spans if s.name == "queue wait"]) == 1, "attempt 1 only"


async def test_the_trace_context_travels_in_the_job_and_an_untraced_job_claims_without(
    broker: Broker,
) -> None:
    """Written at enqueue (field ``tp``), returned by the claim; a job queued without one (or
    before tracing existed) claims with ''."""
    traced = NewJob(
        "acme",
        "openai",
        "/v1/chat/completions",
        "gpt-4o-mini",
        chat_body("t"),
        Priority.STANDARD,
        trace=f"1764758400000000000 00-{'a' * 32}-{'b' * 16}-01 k=v",
    )
    await broker.enqueue(traced, "job_traced")
    claimed = await claim_one(broker)
    assert claimed is not None
    assert (claimed.id, claimed.trace) == ("job_traced", traced.trace)
    await enqueue(broker)
    plain = await claim_one(broker)
    assert plain is not None
    assert plain.trace == ""
