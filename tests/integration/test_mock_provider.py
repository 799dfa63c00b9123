"""The mock over real HTTP, driven by the official openai and google-genai SDKs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from openai import OpenAI
from pydantic import BaseModel

from tests.support.processes import ManagedProcess, free_port

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
DEFAULTS = {"latency_ms": 0, "chunk_count": 8, "chunk_delay_ms": 0}


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "anygate.ops.mock_provider", "--port", str(port)]
    with ManagedProcess.start(args, ready_url=f"{url}/_mock/health") as process:
        yield url
        assert process.running, process.log_tail()


@pytest.fixture
def control(base_url: str) -> Iterator[httpx.Client]:
    """A control client on a mock reset to defaults, so tests never see each other's faults."""
    with httpx.Client(base_url=f"{base_url}/_mock", timeout=5) as client:
        client.delete("/faults").raise_for_status()
        client.post("/settings", json=DEFAULTS).raise_for_status()
        client.delete("/requests").raise_for_status()
        yield client


@pytest.fixture
def oai(base_url: str, control: httpx.Client) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{base_url}/v1", api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture(params=["v1beta", "v1"])
def gemini(
    request: pytest.FixtureRequest, base_url: str, control: httpx.Client
) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=base_url, api_version=request.param)
    with genai.Client(api_key="k", http_options=options) as client:
        yield client


def ask(oai: OpenAI, **fields: Any) -> Any:
    messages: Any = [{"role": "user", "content": "what is the weather"}]
    return oai.chat.completions.create(model="gpt-4o-mini", messages=messages, **fields)


def wait_for_entry(control: httpx.Client, *, aborted: bool, timeout: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        entries = control.get("/requests").json()["data"]
        if entries and entries[-1]["finished_at"] is not None and entries[-1]["aborted"] is aborted:
            entry: dict[str, Any] = entries[-1]
            return entry
        assert time.monotonic() < deadline, entries
        time.sleep(0.02)


def test_openai_chat_returns_the_mock_reply(oai: OpenAI) -> None:
    completion = ask(oai)

    assert completion.choices[0].message.content == "Mock reply to: what is the weather"
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens
        == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_openai_stream_with_usage_concatenates_to_the_unary_content(oai: OpenAI) -> None:
    unary = ask(oai).choices[0].message.content

    chunks = list(ask(oai, stream=True, stream_options={"include_usage": True}))

    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == unary
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None


def test_openai_n_returns_indexed_choices(oai: OpenAI) -> None:
    completion = ask(oai, n=2)

    assert [choice.index for choice in completion.choices] == [0, 1]


def test_openai_tools_produce_a_tool_call(oai: OpenAI) -> None:
    choice = ask(oai, tools=[WEATHER_TOOL]).choices[0]

    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert (call.function.name, call.function.arguments) == (
        "get_weather",
        '{"city":"mock","days":1}',
    )


def test_openai_streamed_tool_call_accumulates_to_the_arguments(oai: OpenAI) -> None:
    arguments = "".join(
        call.function.arguments or ""
        for chunk in ask(oai, tools=[WEATHER_TOOL], stream=True)
        for call in (chunk.choices[0].delta.tool_calls or [])
        if call.function is not None
    )

    assert arguments == '{"city":"mock","days":1}'


def test_openai_parse_fills_a_pydantic_json_schema_response(oai: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "who?"}]

    completion = oai.chat.completions.parse(
        model="gpt-4o", messages=messages, response_format=Person
    )

    assert completion.choices[0].message.parsed == Person(name="mock", age=1)


def test_openai_default_base64_embeddings_equal_float_embeddings(oai: OpenAI) -> None:
    default = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    floats = oai.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )

    assert [item.embedding for item in default.data] == [item.embedding for item in floats.data]
    assert len(default.data[0].embedding) == 8


def test_openai_models_list_returns_the_catalogue(oai: OpenAI) -> None:
    assert "gpt-4o-mini" in {model.id for model in oai.models.list()}


def test_openai_429_fault_raises_rate_limit_error_with_retry_after(
    oai: OpenAI, control: httpx.Client
) -> None:
    control.post("/faults", json=[{"fault": "429", "retry_after": 3, "times": 1}])

    with pytest.raises(openai.RateLimitError) as caught:
        ask(oai)

    assert caught.value.response.headers["retry-after"] == "3"


def test_openai_drop_mid_stream_raises_on_the_client(oai: OpenAI, control: httpx.Client) -> None:
    control.post("/faults", json=[{"fault": "drop", "after_chunks": 2}])

    with pytest.raises(openai.APIConnectionError):
        list(ask(oai, stream=True))


def test_openai_drop_before_unary_body_raises_on_the_client(
    oai: OpenAI, control: httpx.Client
) -> None:
    control.post("/faults", json=[{"fault": "drop"}])

    with pytest.raises(openai.APIConnectionError):
        ask(oai)


def test_openai_malformed_stream_chunk_fails_to_parse(oai: OpenAI, control: httpx.Client) -> None:
    control.post("/faults", json=[{"fault": "malformed", "after_chunks": 1}])

    with pytest.raises(ValueError, match=r"Expecting|Unterminated|delimiter"):
        list(ask(oai, stream=True))


def test_hang_is_logged_as_aborted_within_a_second_of_the_client_giving_up(
    oai: OpenAI, control: httpx.Client
) -> None:
    control.post("/faults", json=[{"fault": "hang"}])

    with pytest.raises(openai.APITimeoutError):
        ask(oai, timeout=0.3)
    gave_up_at = time.time()

    entry = wait_for_entry(control, aborted=True)
    assert entry["aborted_at"] - gave_up_at < 1.0
    assert entry["status"] is None


def test_client_leaving_a_slow_stream_is_logged_as_aborted(
    oai: OpenAI, control: httpx.Client
) -> None:
    control.post("/settings", json={"chunk_delay_ms": 200})

    with ask(oai, stream=True) as stream:
        next(iter(stream))
    left_at = time.time()

    entry = wait_for_entry(control, aborted=True)
    assert (entry["status"], entry["stream"]) == (200, True)
    assert entry["aborted_at"] - left_at < 1.0


def test_latency_setting_delays_the_reply(oai: OpenAI, control: httpx.Client) -> None:
    control.post("/settings", json={"latency_ms": 300})

    started = time.monotonic()
    ask(oai)

    assert time.monotonic() - started >= 0.3


def test_request_log_records_each_request_and_clears(oai: OpenAI, control: httpx.Client) -> None:
    ask(oai)
    ask(oai, stream=True).close()

    entries = control.get("/requests").json()["data"]
    control.delete("/requests")

    assert [(e["method"], e["path"], e["model"], e["stream"]) for e in entries] == [
        ("POST", "/v1/chat/completions", "gpt-4o-mini", False),
        ("POST", "/v1/chat/completions", "gpt-4o-mini", True),
    ]
    assert all(e["started_at"] <= e["finished_at"] for e in entries)
    assert control.get("/requests").json()["data"] == []


def test_gemini_generate_content_returns_the_mock_reply(gemini: genai.Client) -> None:
    response = gemini.models.generate_content(model="gemini-2.5-flash", contents="hello there")

    assert response.text == "Mock reply to: hello there"
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count == 7


def test_gemini_stream_concatenates_to_the_unary_text(gemini: genai.Client) -> None:
    unary = gemini.models.generate_content(model="gemini-2.5-flash", contents="hello there").text

    chunks = list(
        gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="hello there")
    )

    assert "".join(chunk.text or "" for chunk in chunks) == unary
    assert len(chunks) == 8


def test_gemini_function_declaration_produces_a_function_call(gemini: genai.Client) -> None:
    declaration = types.FunctionDeclaration(
        name="get_weather",
        parameters=types.Schema(
            type=types.Type.OBJECT,
            properties={"city": types.Schema(type=types.Type.STRING)},
            required=["city"],
        ),
    )
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])

    response = gemini.models.generate_content(
        model="gemini-2.5-flash", contents="weather?", config=config
    )

    assert response.function_calls is not None
    assert (response.function_calls[0].name, response.function_calls[0].args) == (
        "get_weather",
        {"city": "mock"},
    )


def test_gemini_response_schema_fills_a_pydantic_model(gemini: genai.Client) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=Person
    )

    response = gemini.models.generate_content(
        model="gemini-2.5-flash", contents="who?", config=config
    )

    assert response.parsed == Person(name="mock", age=1)


def test_gemini_embed_content_returns_one_vector_per_content(gemini: genai.Client) -> None:
    response = gemini.models.embed_content(model="gemini-embedding-001", contents=["a", "b", "a"])

    assert response.embeddings is not None
    values = [embedding.values for embedding in response.embeddings]
    assert len(values) == 3
    assert values[0] == values[2] != values[1]


def test_gemini_count_tokens_counts_words(gemini: genai.Client) -> None:
    response = gemini.models.count_tokens(model="gemini-2.5-flash", contents="one two three")

    assert response.total_tokens == 3


def test_gemini_models_list_pages_through_the_catalogue(gemini: genai.Client) -> None:
    names = [model.name for model in gemini.models.list(config={"page_size": 2})]

    assert "models/gemini-2.5-flash" in names
    assert len(names) == len(set(names)) > 2


def test_gemini_models_get_returns_the_model(gemini: genai.Client) -> None:
    assert gemini.models.get(model="gemini-2.5-pro").name == "models/gemini-2.5-pro"


def test_gemini_429_fault_raises_client_error(gemini: genai.Client, control: httpx.Client) -> None:
    control.post("/faults", json=[{"fault": "429", "times": 1}])

    with pytest.raises(genai_errors.ClientError) as caught:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")

    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_gemini_drop_mid_stream_raises_on_the_client(
    gemini: genai.Client, control: httpx.Client
) -> None:
    control.post("/faults", json=[{"fault": "drop", "after_chunks": 3}])

    # google-genai surfaces its transport's own error (httpx or httpx2, depending on version).
    with pytest.raises(Exception, match="peer closed connection"):
        list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
