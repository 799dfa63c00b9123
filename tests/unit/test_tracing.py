"""Traces (telemetry/tracing.py, docs/tracing.md): the switch, the job's trace codec, and the
GenAI attributes read from OpenAI-format bodies and answers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from anygate.broker.models import NewJob
from anygate.config import Priority
from anygate.telemetry.tracing import Carrier, decode_carrier, encode_carrier, wanted

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

OFF_PATH = """
import sys
from anygate.telemetry import tracing
import anygate.api.app, anygate.api.jobs, anygate.workers.worker, anygate.workers.runner
assert tracing.enabled is False, "tracing on without being asked"
assert type(tracing.spans).__name__ == "NoSpans"
assert tracing.spans.attempt(
    "1 x", job_id="j", attempt=1, pool="p", worker_id="w", claimed_ns=0
) is tracing.NULL, "a span was made with tracing off"
assert tracing.spans.upstream(
    provider="openai", operation="chat", model="m", server_address="", body=b"{}"
) is tracing.NULL
assert tracing.spans.carrier() == ""
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, f"tracing off, yet loaded: {loaded}"
print("ok")
"""


class TestSwitch:
    @pytest.mark.parametrize(
        ("env", "on"),
        [
            ({}, False),
            ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
            ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
            ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "true"}, False),
            ({"OTEL_SERVICE_NAME": "gw"}, False),
        ],
    )
    def test_the_sdk_environment_decides(self, env: dict[str, str], on: bool) -> None:
        assert wanted(env) is on

    def test_with_tracing_off_no_span_is_made_and_opentelemetry_is_never_imported(self) -> None:
        """The API's and the worker's modules loaded, every span asked for: the shared no-op
        context comes back and no ``opentelemetry`` module is in the process (it is installed
        here: the test extra brings it)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        result = subprocess.run(
            [sys.executable, "-c", OFF_PATH], capture_output=True, text=True, env=env, check=False
        )
        assert result.stdout.strip() == "ok", result.stderr

    def test_with_tracing_asked_for_the_opentelemetry_spans_are_chosen(self) -> None:
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "console"}
        code = (
            "from anygate.telemetry import tracing\n"
            "print(tracing.enabled, type(tracing.spans).__name__)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        assert result.stdout.split() == ["True", "OtelSpans"], result.stderr


class TestCarrier:
    @pytest.mark.parametrize(
        "carrier",
        [
            Carrier(1764758400123456789, PARENT),
            Carrier(1, PARENT, "congo=t61rcWkgMzE"),
            Carrier(2, PARENT, "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"),
        ],
    )
    def test_round_trip(self, carrier: Carrier) -> None:
        assert decode_carrier(encode_carrier(carrier)) == carrier

    @pytest.mark.parametrize("value", ["", "garbage", f"x1 {PARENT}", "12"])
    def test_an_unreadable_value_is_no_trace(self, value: str) -> None:
        assert decode_carrier(value) is None

    def test_the_job_hash_holds_it_only_when_traced(self) -> None:
        job = NewJob("acme", "openai", "/v1/chat/completions", "m", b"{}", Priority.STANDARD)
        traced = NewJob(
            "acme", "openai", "/v1/chat/completions", "m", b"{}", Priority.STANDARD, trace="7 tp"
        )
        assert "tp" not in job.record_fields(None)
        fields = traced.record_fields(None)
        assert fields[fields.index("tp") + 1] == "7 tp"


class TestGenAiAttributes:
    def test_request_parameters(self) -> None:
        from anygate.telemetry.otel_spans import request_attributes  # noqa: PLC0415

        body = b'{"model":"m","max_tokens":64,"temperature":0.2,"stream":true,"seed":true}'
        assert request_attributes(body) == {
            "gen_ai.request.max_tokens": 64,
            "gen_ai.request.temperature": 0.2,
        }
        assert request_attributes(b"[1]") == request_attributes(b"not json") == {}

    def test_response_model_usage_and_finish_reasons(self) -> None:
        from anygate.telemetry.otel_spans import response_attributes  # noqa: PLC0415

        result = {
            "id": "chatcmpl-1",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "finish_reason": "stop"}],
        }
        usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
        assert response_attributes(result, usage) == {
            "gen_ai.response.id": "chatcmpl-1",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 30,
        }
        assert response_attributes({"data": []}, None) == {}
