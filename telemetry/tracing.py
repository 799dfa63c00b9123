"""Traces, when asked for: one switch, read once, and nothing on the hot path when it is off.

``enabled`` is decided when this module is first imported (a process's start): the
``anygate[otel]`` extra must be installed and the environment must ask for traces the
OpenTelemetry way (``OTEL_TRACES_EXPORTER`` other than ``none``, or an OTLP endpoint; see
docs/tracing.md). Every call site tests ``tracing.enabled`` once and, when it is False, uses
``NULL`` (a shared ``nullcontext``) instead of a span: no OpenTelemetry module is imported, no
object allocated. When it is True, ``spans`` is ``otel_spans.OtelSpans``, the only module that
imports OpenTelemetry.

The trace crosses Redis inside the job, as one field (``tp``): ``encode_carrier`` and
``decode_carrier`` are its codec (docs/tracing.md#propagation-through-redis).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol

TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def wanted(env: Mapping[str, str]) -> bool:
    """Does the environment ask for traces? The SDK's own variables decide: an exporter named
    (``none`` is no exporter), or an OTLP endpoint given; ``OTEL_SDK_DISABLED=true`` wins."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get(TRACES_EXPORTER, "").strip().lower()
    if exporter:
        return exporter != "none"
    return any(env.get(name, "").strip() for name in ENDPOINTS)


def installed() -> bool:
    """The ``anygate[otel]`` extra: the SDK and the OTLP/HTTP exporter, checked without
    importing them."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
    )


@dataclass(frozen=True, slots=True)
class Carrier:
    """What a job carries of its trace: when it was queued and the W3C trace context of the
    span that queued it."""

    enqueued_ns: int
    """Wall clock of the API at enqueue: the queue-wait span starts here."""
    traceparent: str
    tracestate: str = ""


def encode_carrier(carrier: Carrier) -> str:
    """The job field ``tp``: ``<enqueued ns> <traceparent>[ <tracestate>]``. A traceparent
    holds no space; a tracestate may (optional whitespace around its commas), so it is last."""
    head = f"{carrier.enqueued_ns} {carrier.traceparent}"
    return f"{head} {carrier.tracestate}" if carrier.tracestate else head


def decode_carrier(value: str) -> Carrier | None:
    """``encode_carrier``'s inverse; None for '' (an untraced job) or a value it cannot read
    (the worker then begins no span from it rather than fail the job)."""
    parts = value.split(" ", 2)
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    return Carrier(int(parts[0]), parts[1], parts[2] if len(parts) == 3 else "")


Attribute = str | int | float | bool


class ServerSpan(Protocol):
    """What ``Spans.server`` yields: the request's outcome, once known."""

    def done(self, status: int, route: str | None) -> None:
        """The response's status and the route template that served it (the span's name)."""


class Spans(Protocol):
    """The spans anygate makes (docs/tracing.md#spans); ``NoSpans`` or ``OtelSpans``."""

    def start(self, service: str) -> None:
        """Install the tracer provider and its exporter (from the ``OTEL_*`` environment);
        ``service`` names the process unless ``OTEL_SERVICE_NAME`` does."""

    def shutdown(self) -> None:
        """Export what is buffered; at the process's end."""

    def server(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> AbstractContextManager[ServerSpan]:
        """The API request (kind SERVER), child of the caller's ``traceparent`` if it sent one."""

    def carrier(self) -> str:
        """The current span's context and the time, encoded for ``NewJob.trace``."""

    def attempt(
        self, trace: str, *, job_id: str, attempt: int, pool: str, worker_id: str, claimed_ns: int
    ) -> AbstractContextManager[None]:
        """One attempt of a claimed job, child of the span that queued it; the first attempt
        is preceded by its queue-wait span (enqueue to claim)."""

    def rate_limit(self) -> AbstractContextManager[None]:
        """The checks before the call: deployment pauses, breaker and rate windows."""

    def note(self, attributes: Mapping[str, Attribute]) -> None:
        """Attributes on the current span (``anygate.*``)."""

    def upstream(
        self, *, provider: str, operation: str, model: str, server_address: str, body: bytes
    ) -> AbstractContextManager[None]:
        """The upstream call (kind CLIENT) with GenAI request attributes."""

    def answered(self, result: dict[str, Any], usage: dict[str, Any] | None) -> None:
        """GenAI response attributes (model, token usage) on the current upstream span."""


NULL: Final = contextlib.nullcontext()
"""What a call site enters instead of a span when tracing is off: one shared object."""


class _NoServerSpan:
    def done(self, status: int, route: str | None) -> None:
        pass


class NoSpans:
    """Tracing off: every method does nothing (call sites do not even call them)."""

    def start(self, service: str) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def server(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> AbstractContextManager[ServerSpan]:
        return contextlib.nullcontext(_NoServerSpan())

    def carrier(self) -> str:
        return ""

    def attempt(
        self, trace: str, *, job_id: str, attempt: int, pool: str, worker_id: str, claimed_ns: int
    ) -> AbstractContextManager[None]:
        return NULL

    def rate_limit(self) -> AbstractContextManager[None]:
        return NULL

    def note(self, attributes: Mapping[str, Attribute]) -> None:
        pass

    def upstream(
        self, *, provider: str, operation: str, model: str, server_address: str, body: bytes
    ) -> AbstractContextManager[None]:
        return NULL

    def answered(self, result: dict[str, Any], usage: dict[str, Any] | None) -> None:
        pass


def _choose() -> tuple[bool, Spans]:
    if not (wanted(os.environ) and installed()):
        return False, NoSpans()
    otel: Any = importlib.import_module("anygate.telemetry.otel_spans")
    chosen: Spans = otel.OtelSpans()
    return True, chosen


enabled, spans = _choose()
"""Chosen once, at import; see the module's docstring."""
