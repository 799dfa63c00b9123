"""The spans of docs/tracing.md#spans, made with OpenTelemetry: imported only when
``tracing.enabled`` (the ``anygate[otel]`` extra installed and asked for), so a gateway without
it never loads this module.

Exporters come from the SDK's own environment: ``OTEL_TRACES_EXPORTER`` (``otlp``, the default,
over HTTP/protobuf; ``console``), ``OTEL_EXPORTER_OTLP_*`` read by the exporter itself,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*`` and ``OTEL_RESOURCE_ATTRIBUTES`` / ``OTEL_SERVICE_NAME``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from anygate.telemetry.tracing import (
    TRACES_EXPORTER,
    Attribute,
    Carrier,
    ServerSpan,
    decode_carrier,
    encode_carrier,
)

W3C = TraceContextTextMapPropagator()
"""The job's carrier is W3C trace context whatever ``OTEL_PROPAGATORS`` says: it is our own
format across Redis, not a header."""

PROVIDER_NAMES = {
    "openai": "openai",
    "openai_compatible": "openai",
    "azure_openai": "azure.ai.openai",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
}
"""``gen_ai.provider.name`` per provider kind (config); an OpenAI-compatible server speaks
OpenAI's flavour, and ``server.address`` tells which one it is."""

REQUEST_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
}
"""OpenAI body fields (every job body is OpenAI-format) and their GenAI attributes."""


def _exporters() -> list[SpanExporter]:
    names = os.environ.get(TRACES_EXPORTER, "otlp").lower()
    found: list[SpanExporter] = []
    for name in (n.strip() for n in names.split(",")):
        if name == "otlp":
            found.append(OTLPSpanExporter())  # reads OTEL_EXPORTER_OTLP_* itself
        elif name == "console":
            found.append(ConsoleSpanExporter())
        elif name not in {"", "none"}:
            raise ValueError(f"{TRACES_EXPORTER}={names!r}: anygate exports to otlp or console")
    return found


def request_attributes(body: bytes) -> dict[str, Attribute]:
    """GenAI request attributes from an OpenAI-format body; {} for a body it cannot read."""
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(fields, dict):
        return {}
    found: dict[str, Attribute] = {}
    for field, name in REQUEST_PARAMS.items():
        value = fields.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = value
    return found


def response_attributes(
    result: Mapping[str, Any], usage: Mapping[str, Any] | None
) -> dict[str, Any]:
    """GenAI response attributes from an OpenAI-format answer and its usage."""
    found: dict[str, Any] = {}
    if isinstance(result.get("model"), str):
        found["gen_ai.response.model"] = result["model"]
    if isinstance(result.get("id"), str):
        found["gen_ai.response.id"] = result["id"]
    choices = result.get("choices")
    if isinstance(choices, list):
        reasons = [
            c["finish_reason"] for c in choices if isinstance(c, dict) and c.get("finish_reason")
        ]
        if reasons:
            found["gen_ai.response.finish_reasons"] = [str(r) for r in reasons]
    for field, name in (
        ("prompt_tokens", "gen_ai.usage.input_tokens"),
        ("completion_tokens", "gen_ai.usage.output_tokens"),
    ):
        value = (usage or {}).get(field)
        if isinstance(value, int):
            found[name] = value
    return found


def error_type(exc: BaseException) -> str:
    """``error.type``: the gateway's error code, else its OpenAI error type (both low
    cardinality), else the exception's class."""
    for name in ("code", "type"):
        value = getattr(exc, name, None)
        if isinstance(value, str) and value:
            return value
    return type(exc).__name__


class _Server:
    def __init__(self, span: trace.Span, method: str) -> None:
        self._span = span
        self._method = method

    def done(self, status: int, route: str | None) -> None:
        self._span.set_attribute("http.response.status_code", status)
        if route:
            self._span.set_attribute("http.route", route)
            self._span.update_name(f"{self._method} {route}")
        if status >= 500:
            self._span.set_status(StatusCode.ERROR)


class OtelSpans:
    """``tracing.Spans`` with OpenTelemetry."""

    def __init__(self) -> None:
        self._provider: TracerProvider | None = None
        self._tracer = trace.get_tracer("anygate")

    def start(self, service: str) -> None:
        if self._provider is not None:
            return
        named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
        provider = TracerProvider(resource=Resource.create(named))
        for exporter in _exporters():
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        self._provider = provider
        self._tracer = provider.get_tracer("anygate")

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()

    @contextlib.contextmanager
    def server(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> Iterator[ServerSpan]:
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
        with self._tracer.start_as_current_span(
            method,
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        ) as span:
            yield _Server(span, method)

    def carrier(self) -> str:
        fields: dict[str, str] = {}
        W3C.inject(fields)
        parent = fields.get("traceparent")
        if not parent:
            return ""
        return encode_carrier(Carrier(time.time_ns(), parent, fields.get("tracestate", "")))

    @contextlib.contextmanager
    def attempt(
        self, trace: str, *, job_id: str, attempt: int, pool: str, worker_id: str, claimed_ns: int
    ) -> Iterator[None]:
        carrier = decode_carrier(trace)
        parent = None
        if carrier is not None:
            parent = W3C.extract(
                {"traceparent": carrier.traceparent, "tracestate": carrier.tracestate}
            )
        job: dict[str, Attribute] = {"anygate.job.id": job_id, "anygate.pool": pool}
        if carrier is not None and attempt == 1:
            wait = self._tracer.start_span(
                "queue wait",
                context=parent,
                attributes=job,
                start_time=min(carrier.enqueued_ns, claimed_ns),
            )
            wait.end(end_time=claimed_ns)
        with self._tracer.start_as_current_span(
            "job attempt",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={**job, "anygate.job.attempt": attempt, "anygate.worker.id": worker_id},
        ):
            yield

    def rate_limit(self) -> contextlib.AbstractContextManager[Any]:
        return self._tracer.start_as_current_span("rate limit")

    def note(self, attributes: Mapping[str, Attribute]) -> None:
        trace.get_current_span().set_attributes(attributes)

    @contextlib.contextmanager
    def upstream(
        self, *, provider: str, operation: str, model: str, server_address: str, body: bytes
    ) -> Iterator[None]:
        name = PROVIDER_NAMES.get(provider, provider)
        url = urlsplit(server_address)
        attributes: dict[str, Attribute] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": name,
            "gen_ai.system": name,  # the name before semantic conventions 1.37
            "gen_ai.request.model": model,
            **request_attributes(body),
        }
        if url.hostname:
            attributes["server.address"] = url.hostname
            attributes["server.port"] = url.port or (443 if url.scheme == "https" else 80)
        with self._tracer.start_as_current_span(
            f"{operation} {model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except Exception as exc:
                span.set_attribute("error.type", error_type(exc))
                span.set_status(StatusCode.ERROR, str(exc))
                raise

    def answered(self, result: dict[str, Any], usage: dict[str, Any] | None) -> None:
        trace.get_current_span().set_attributes(response_attributes(result, usage))
