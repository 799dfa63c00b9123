"""The Gemini adapter against the mock provider over real HTTP: translation, streaming, faults."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from anygate.broker import ClaimedJob
from anygate.broker.errors import (
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTransientError,
)
from anygate.config import Priority
from anygate.workers.adapters import GeminiAdapter, JobLostError, UpstreamClient
from anygate.workers.adapters.auth import KeyHeader
from anygate.workers.adapters.targets import GeminiTarget, Targets, gemini_api_root
from tests.support.mock import MockControl
from tests.support.processes import free_port

KEY = "gk-very-secret-0123456789"
MODEL = "gemini-2.5-flash"
EMBEDDER = "gemini-embedding-001"
CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _targets(base_url: str) -> Targets[GeminiTarget]:
    target = GeminiTarget(gemini_api_root(base_url), KeyHeader("x-goog-api-key", SecretStr(KEY)))
    return Targets(target, lambda _account: target)


def job(body: dict[str, Any], *, stream: bool = False, endpoint: str = CHAT) -> ClaimedJob:
    return ClaimedJob(
        id="job_testgemini",
        attempt=1,
        tenant="acme",
        endpoint=endpoint,
        model="alias",
        body=orjson.dumps(body),
        priority=Priority.INTERACTIVE,
        stream=stream,
    )


def chat(text: str = "Tell me about Paris", **extra: Any) -> dict[str, Any]:
    return {"model": "alias", "messages": [{"role": "user", "content": text}], **extra}


class Sink:
    """Collects what the adapter relays, as the worker's chunk sink would."""

    def __init__(self) -> None:
        self.chunks: list[dict[str, Any]] = []

    async def __call__(self, data: bytes) -> None:
        self.chunks.append(orjson.loads(data))


@pytest.fixture
async def adapter(mock: MockControl) -> AsyncIterator[GeminiAdapter]:
    client = UpstreamClient(timeout_s=10, connect_timeout_s=2, max_connections=8)
    gemini = GeminiAdapter(_targets(mock.url), client)
    yield gemini
    await gemini.aclose()


async def failure(adapter: GeminiAdapter, claimed: ClaimedJob, model: str = MODEL) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await adapter.call(claimed, model, Sink())
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)
    return caught.value


class TestChat:
    async def test_unary_answer_is_a_chat_completion_with_usage(
        self, adapter: GeminiAdapter
    ) -> None:
        outcome = await adapter.call(job(chat()), MODEL, Sink())
        choice = outcome.result["choices"][0]
        assert outcome.result["object"] == "chat.completion"
        assert choice["message"]["content"]
        assert choice["finish_reason"] == "stop"
        assert outcome.usage is not None
        assert outcome.usage["prompt_tokens"] > 0
        assert outcome.usage["completion_tokens"] > 0

    async def test_streamed_text_equals_unary_text(self, adapter: GeminiAdapter) -> None:
        unary = await adapter.call(job(chat()), MODEL, Sink())
        sink = Sink()
        streamed = await adapter.call(job(chat(), stream=True), MODEL, sink)
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in sink.chunks if c["choices"]
        )
        assert text == unary.result["choices"][0]["message"]["content"]
        assert streamed.result == unary.result | {"created": streamed.result["created"]}

    async def test_stream_relays_each_chunk_and_ends_with_usage(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        mock.settings(chunk_count=5)
        sink = Sink()
        outcome = await adapter.call(job(chat(), stream=True), MODEL, sink)
        assert sink.chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert len([c for c in sink.chunks if c["choices"]]) >= 5
        assert sink.chunks[-1]["choices"] == []
        assert sink.chunks[-1]["usage"] == outcome.usage

    async def test_system_message_reaches_gemini_as_system_instruction(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        body = chat()
        body["messages"].insert(0, {"role": "system", "content": "Be terse"})
        await adapter.call(job(body), MODEL, Sink())
        (entry,) = mock.requests()
        assert entry["body"]["systemInstruction"] == {"parts": [{"text": "Be terse"}]}
        assert entry["path"] == f"/v1beta/models/{MODEL}:generateContent"

    async def test_key_travels_in_a_header_not_the_url(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        await adapter.call(job(chat(), stream=True), MODEL, Sink())
        (entry,) = mock.requests()
        assert entry["path"] == f"/v1beta/models/{MODEL}:streamGenerateContent"
        assert KEY not in orjson.dumps(entry).decode()

    async def test_n_returns_several_choices(self, adapter: GeminiAdapter) -> None:
        outcome = await adapter.call(job(chat(n=2), stream=True), MODEL, Sink())
        assert [c["index"] for c in outcome.result["choices"]] == [0, 1]

    async def test_function_call_comes_back_as_tool_calls(self, adapter: GeminiAdapter) -> None:
        outcome = await adapter.call(job(chat(tools=[WEATHER_TOOL])), MODEL, Sink())
        choice = outcome.result["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert set(orjson.loads(call["function"]["arguments"])) == {"city"}
        assert call["id"].startswith("call_")

    async def test_streamed_function_call_equals_unary(self, adapter: GeminiAdapter) -> None:
        unary = await adapter.call(job(chat(tools=[WEATHER_TOOL])), MODEL, Sink())
        sink = Sink()
        streamed = await adapter.call(job(chat(tools=[WEATHER_TOOL]), stream=True), MODEL, sink)
        deltas = [c["choices"][0]["delta"] for c in sink.chunks if c["choices"]]
        assert any(delta.get("tool_calls") for delta in deltas)
        assert streamed.result["choices"] == unary.result["choices"]

    async def test_tool_result_round_trip_gets_a_text_answer(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        first = await adapter.call(job(chat(tools=[WEATHER_TOOL])), MODEL, Sink())
        message = first.result["choices"][0]["message"]
        call = message["tool_calls"][0]
        body = chat(tools=[WEATHER_TOOL])
        body["messages"] += [
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": "21C"},
        ]
        outcome = await adapter.call(job(body), MODEL, Sink())
        assert outcome.result["choices"][0]["finish_reason"] == "stop"
        response = mock.requests()[-1]["body"]["contents"][-1]["parts"][0]["functionResponse"]
        assert response == {"name": "get_weather", "response": {"output": "21C"}}

    async def test_json_schema_reaches_gemini_as_its_schema_field(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        schema = {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        }
        fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
        outcome = await adapter.call(job(chat(response_format=fmt)), MODEL, Sink())
        config = mock.requests()[-1]["body"]["generationConfig"]
        assert config["responseMimeType"] == "application/json"
        assert config["responseJsonSchema"] == schema
        answer = orjson.loads(outcome.result["choices"][0]["message"]["content"])
        assert set(answer) == {"name", "age"}

    async def test_untranslatable_request_fails_without_calling_gemini(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        err = await failure(adapter, job(chat(logit_bias={"1": 5})))
        assert isinstance(err, UpstreamRejectedError)
        assert "logit_bias" in err.message
        assert mock.requests() == []

    async def test_lost_job_stops_the_stream(self, adapter: GeminiAdapter) -> None:
        async def lose(_: bytes) -> None:
            raise JobLostError

        with pytest.raises(JobLostError):
            await adapter.call(job(chat(), stream=True), MODEL, lose)


class TestEmbeddings:
    async def test_one_input_uses_embed_content(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        outcome = await adapter.call(
            job({"model": "e", "input": "hello"}, endpoint=EMBEDDINGS), EMBEDDER, Sink()
        )
        assert outcome.result["object"] == "list"
        (item,) = outcome.result["data"]
        assert isinstance(item["embedding"], list)
        assert item["embedding"]
        assert mock.requests()[-1]["path"].endswith(":embedContent")

    async def test_a_list_uses_batch_embed_contents(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        body = {"model": "e", "input": ["a", "b", "c"], "dimensions": 4}
        outcome = await adapter.call(job(body, endpoint=EMBEDDINGS), EMBEDDER, Sink())
        assert [d["index"] for d in outcome.result["data"]] == [0, 1, 2]
        assert all(len(d["embedding"]) == 4 for d in outcome.result["data"])
        assert mock.requests()[-1]["path"].endswith(":batchEmbedContents")

    async def test_base64_decodes_to_the_float_vectors(self, adapter: GeminiAdapter) -> None:
        floats = await adapter.call(
            job({"model": "e", "input": ["a", "b"]}, endpoint=EMBEDDINGS), EMBEDDER, Sink()
        )
        encoded = await adapter.call(
            job(
                {"model": "e", "input": ["a", "b"], "encoding_format": "base64"},
                endpoint=EMBEDDINGS,
            ),
            EMBEDDER,
            Sink(),
        )
        for plain, packed in zip(floats.result["data"], encoded.result["data"], strict=True):
            raw = base64.b64decode(packed["embedding"])
            values = struct.unpack(f"<{len(raw) // 4}f", raw)
            assert values == pytest.approx(plain["embedding"], rel=1e-6)

    async def test_token_array_input_is_rejected(self, adapter: GeminiAdapter) -> None:
        err = await failure(adapter, job({"model": "e", "input": [1, 2]}, endpoint=EMBEDDINGS))
        assert isinstance(err, UpstreamRejectedError)


class TestFaults:
    async def test_429_with_retry_info_is_rate_limited_with_its_delay(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        mock.fault(fault="429", retry_after=3, times=1)
        err = await failure(adapter, job(chat()))
        assert isinstance(err, UpstreamRateLimitedError)
        assert err.retry_after == 3
        assert err.code == "RESOURCE_EXHAUSTED"

    async def test_429_on_a_stream_is_rate_limited(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        mock.fault(fault="429", retry_after=2, times=1)
        err = await failure(adapter, job(chat(), stream=True))
        assert isinstance(err, UpstreamRateLimitedError)
        assert err.retry_after == 2

    @pytest.mark.parametrize("fault", ["500", "503"])
    async def test_server_error_is_transient(
        self, adapter: GeminiAdapter, mock: MockControl, fault: str
    ) -> None:
        mock.fault(fault=fault, times=1)
        err = await failure(adapter, job(chat()))
        assert isinstance(err, UpstreamTransientError)
        assert err.upstream_status == int(fault)

    async def test_drop_mid_stream_is_transient(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        mock.fault(fault="drop", times=1)
        sink = Sink()
        with pytest.raises(UpstreamTransientError):
            await adapter.call(job(chat(), stream=True), MODEL, sink)
        assert sink.chunks  # the first chunk was relayed before the connection went away

    async def test_malformed_chunk_is_transient(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        mock.fault(fault="malformed", times=1)
        err = await failure(adapter, job(chat(), stream=True))
        assert isinstance(err, UpstreamTransientError)
        assert err.code == "malformed_chunk"

    async def test_malformed_unary_body_is_transient(
        self, adapter: GeminiAdapter, mock: MockControl
    ) -> None:
        mock.fault(fault="malformed", times=1)
        err = await failure(adapter, job(chat()))
        assert isinstance(err, UpstreamTransientError)

    async def test_bad_request_is_rejected_with_googles_message(
        self, adapter: GeminiAdapter
    ) -> None:
        err = await failure(adapter, job(chat(n=9)))
        assert isinstance(err, UpstreamRejectedError)
        assert err.upstream_status == 400
        assert "candidate" in err.message.lower()
        assert err.code == "INVALID_ARGUMENT"

    async def test_bad_stream_request_is_rejected(self, adapter: GeminiAdapter) -> None:
        err = await failure(adapter, job(chat(max_tokens=0), stream=True))
        assert isinstance(err, UpstreamRejectedError)

    async def test_hang_times_out_as_transient(self, mock: MockControl) -> None:
        mock.fault(fault="hang", times=1)
        client = UpstreamClient(timeout_s=0.5, connect_timeout_s=1, max_connections=8)
        gemini = GeminiAdapter(_targets(mock.url), client)
        try:
            err = await failure(gemini, job(chat(), stream=True))
        finally:
            await gemini.aclose()
        assert isinstance(err, UpstreamTransientError)
        assert err.code == "upstream_timeout"

    async def test_unreachable_server_is_transient_and_keyless(self) -> None:
        client = UpstreamClient(timeout_s=2, connect_timeout_s=1, max_connections=8)
        gemini = GeminiAdapter(_targets(f"http://127.0.0.1:{free_port()}"), client)
        try:
            err = await failure(gemini, job(chat()))
        finally:
            await gemini.aclose()
        assert isinstance(err, UpstreamTransientError)
        assert err.code == "upstream_connection_error"
