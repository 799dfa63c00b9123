"""Pure worker logic: folding chunks, classifying upstream failures, routing, backoff, cost."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict

from anygate.broker.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTransientError,
)
from anygate.broker.routing import RouteSelector, deployment_for, plan, route_for
from anygate.config import Deployment, parse_config
from anygate.workers.adapters.http import error_for_status, parse_retry_after
from anygate.workers.adapters.upstream import transport_error
from anygate.workers.assemble import assemble_chat_completion
from anygate.workers.backoff import retry_delay
from anygate.workers.pricing import cost_usd
from tests.support.chunks import chunk


class TestAssemble:
    def test_text_deltas_concatenate(self) -> None:
        result = assemble_chat_completion(
            [
                chunk({"role": "assistant", "content": ""}),
                chunk({"content": "Hel"}),
                chunk({"content": "lo"}),
                chunk({}, "stop"),
            ]
        )
        assert result["object"] == "chat.completion"
        assert result["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
        assert result["choices"][0]["finish_reason"] == "stop"

    def test_usage_chunk_becomes_usage(self) -> None:
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        result = assemble_chat_completion(
            [chunk({"content": "x"}, "stop"), {"id": "chatcmpl-1", "choices": [], "usage": usage}]
        )
        assert result["usage"] == usage

    def test_streamed_tool_call_arguments_are_joined(self) -> None:
        calls = [
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
            chunk({}, "tool_calls"),
        ]
        message = assemble_chat_completion(calls)["choices"][0]["message"]
        assert message["tool_calls"] == [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ]

    def test_choices_are_kept_apart_and_ordered(self) -> None:
        result = assemble_chat_completion(
            [chunk({"content": "b"}, index=1), chunk({"content": "a"}, index=0)]
        )
        assert [c["message"]["content"] for c in result["choices"]] == ["a", "b"]


class TestClassification:
    @pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
    def test_server_errors_are_transient(self, status: int) -> None:
        assert isinstance(error_for_status(status, b"", {}), UpstreamTransientError)

    def test_429_is_rate_limited_with_retry_after(self) -> None:
        err = error_for_status(429, b"{}", CIMultiDict({"Retry-After": "7"}))
        assert isinstance(err, UpstreamRateLimitedError)
        assert err.retry_after == 7

    def test_400_is_rejected_with_the_providers_message(self) -> None:
        body = b'{"error": {"message": "Invalid n", "code": "invalid_value"}}'
        err = error_for_status(400, body, {})
        assert isinstance(err, UpstreamRejectedError)
        assert (err.message, err.code) == ("Invalid n", "invalid_value")

    def test_transport_errors_never_mention_the_request(self) -> None:
        err = transport_error(aiohttp.ClientConnectionError("Bearer sk-secret refused"))
        assert "sk-secret" not in err.message
        assert err.code == "upstream_connection_error"
        timeout = transport_error(aiohttp.ServerTimeoutError("sk-secret"))
        assert "sk-secret" not in timeout.message
        assert timeout.code == "upstream_timeout"

    def test_retry_after_accepts_seconds_and_dates(self) -> None:
        assert parse_retry_after("2.5") == 2.5
        assert parse_retry_after(None) is None
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


CONFIG = parse_config(
    {
        "providers": {"openai": {"kind": "openai"}, "local": {"kind": "openai_compatible"}},
        "models": {
            "chat": {
                "deployments": [
                    {"provider": "openai", "model": "gpt-4o-mini"},
                    {"provider": "local", "model": "llama"},
                ]
            },
            "emb": {"kind": "embedding", "deployments": [{"provider": "local", "model": "e5"}]},
        },
    }
)


class TestRouting:
    def test_first_deployment_decides_the_pool(self) -> None:
        assert plan(CONFIG, "/v1/chat/completions", "chat", RouteSelector(), {})[0].provider == (
            "openai"
        )
        assert plan(CONFIG, "/v1/embeddings", "emb", RouteSelector(), {})[0].provider == "local"

    def test_unknown_model_is_model_not_found(self) -> None:
        with pytest.raises(ModelNotFoundError):
            route_for(CONFIG, "/v1/chat/completions", "nope")

    def test_model_of_another_kind_is_invalid(self) -> None:
        with pytest.raises(InvalidRequestError, match="embedding model"):
            route_for(CONFIG, "/v1/chat/completions", "emb")

    def test_worker_finds_its_pools_deployment(self) -> None:
        dep = deployment_for(CONFIG, "chat", "local")
        assert dep is not None
        assert dep.model == "llama"
        assert deployment_for(CONFIG, "chat", "gemini") is None


def test_backoff_grows_and_stays_under_the_cap() -> None:
    delays = [retry_delay(a, base_s=0.5, cap_s=4) for a in range(1, 30)]
    assert all(0 <= d <= 4 for d in delays)
    assert max(retry_delay(1, base_s=0.5, cap_s=4) for _ in range(200)) <= 1.0


def test_cost_uses_the_providers_token_counts() -> None:
    dep = Deployment(provider="openai", model="m", input_price_per_m=1.0, output_price_per_m=2.0)
    usage = {"prompt_tokens": 1_000, "completion_tokens": 500}
    assert cost_usd(usage, dep) == pytest.approx(0.002)
    assert cost_usd(None, dep) is None
