"""The official ``openai`` SDK, unchanged, against the gateway
(docs/api.md#openai-compatible-surface, issue 3): any model, whichever provider serves it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.configs import TENANT_KEYS
from tests.support.mock import MockControl
from tests.support.stack import Stack

CHAT_MODELS = ["gpt-4o-mini", "gemini-2.5-flash"]
EMBEDDING_MODELS = ["text-embedding-3-small", "gemini-embedding-001"]
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello to the gateway"},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(full_stack: Stack, mock: MockControl) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=f"{full_stack.url}/v1", api_key=TENANT_KEYS["acme"], max_retries=0, timeout=30
    ) as c:
        yield c


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_chat_non_stream(client: OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    completion = raw.parse()
    assert raw.headers["x-anygate-job-id"].startswith("job_")
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_concatenates_to_the_non_stream_answer(client: OpenAI, model: str) -> None:
    whole = client.chat.completions.create(model=model, messages=MESSAGES)
    chunks = list(
        client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_without_include_usage_sends_no_usage_chunk(client: OpenAI, model: str) -> None:
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks)


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_embeddings_default_base64_and_float(client: OpenAI, model: str) -> None:
    default = client.embeddings.create(model=model, input=["one", "two"])
    floats = client.embeddings.create(model=model, input="one", encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    assert len(default.data[0].embedding) > 0
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    # Token counts are the provider's, never estimated: Gemini's embed endpoints report none.
    assert default.usage.prompt_tokens > 0 or model.startswith("gemini")


def test_models_list_shows_every_alias(client: OpenAI, full_stack: Stack) -> None:
    ids = {m.id for m in client.models.list()}
    assert set(full_stack.tree["models"]) <= ids
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"


def test_tool_call_round_trip_through_gemini(client: OpenAI) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments)["city"]  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    final = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[arg-type]
    )
    assert final.choices[0].finish_reason == "stop"
    assert "sunny" in (final.choices[0].message.content or "")


def test_streamed_tool_call_through_gemini(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "Weather in Rome?"}],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_json_schema_reaches_gemini_as_its_schema(client: OpenAI, mock: MockControl) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Reply in JSON"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": schema, "strict": True},
        },
    )
    assert "answer" in json.loads(completion.choices[0].message.content or "{}")
    sent = next(r for r in mock.requests() if "generateContent" in r["path"])["body"]
    config = sent["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    got = config.get("responseJsonSchema") or config.get("responseSchema")
    assert got["properties"]["answer"]["type"].lower() == "string"
    assert got["required"] == ["answer"]


def test_untranslatable_field_is_400_naming_it(client: OpenAI, mock: MockControl) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gemini-2.5-flash", messages=MESSAGES, logit_bias={"1": 5}
        )
    assert info.value.param == "logit_bias"  # type: ignore[attr-defined]
    assert mock.requests() == [], "nothing was queued or sent upstream"


def test_unknown_model_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-imaginary", messages=MESSAGES)
    assert info.value.code == "model_not_found"


def test_provider_400_is_a_400_with_its_message(client: OpenAI) -> None:
    """A request the gateway cannot judge (the provider knows no such function)."""
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            tools=[{"type": "function", "function": {"name": "known"}}],
            tool_choice={"type": "function", "function": {"name": "unknown"}},
        )
    assert "tool_choice" in info.value.message
    assert info.value.response.headers["x-anygate-job-id"].startswith("job_")


def test_exhausted_upstream_is_an_error_sdks_do_not_retry(
    client: OpenAI, mock: MockControl
) -> None:
    mock.fault(fault="500")
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.response.headers["x-should-retry"] == "false"


def test_caller_leaving_before_the_job_starts_cancels_it(full_stack: Stack) -> None:
    """No gemini worker can take the job in time: the caller gives up, the job is cancelled."""
    full_stack.stop_workers("gemini")
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{full_stack.url}/v1/chat/completions",
                headers={"authorization": f"Bearer {TENANT_KEYS['acme']}"},
                json={"model": "gemini-2.5-flash", "messages": MESSAGES},
                timeout=httpx.Timeout(10, read=0.5),
            )
        jobs = httpx.get(
            f"{full_stack.url}/v1/jobs",
            headers={"authorization": f"Bearer {TENANT_KEYS['acme']}"},
            params={"limit": 1},
        ).json()["data"]
        assert jobs[0]["priority"] == "interactive"
        assert jobs[0]["status"] == "cancelled"
        assert jobs[0]["error"]["code"] == "client_disconnected"
    finally:
        full_stack.start_worker(pool="gemini")
