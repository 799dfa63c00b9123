"""The exact-match response cache end to end (docs/queue-semantics.md#cache): real Redis, real mock
provider, the official SDKs. A hit must reach neither the queue (no job in the tenant's index) nor
the provider (the mock's request log); coalesced callers share one upstream call."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
import redis
from google import genai
from google.genai import types
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from anygate.api.cache_policy import cache_digest
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

CHAT = "/v1/chat/completions"
CACHED_MODELS = ("gpt-4o-mini", "text-embedding-3-small", "gemini-2.5-flash")
WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _tree(redis_url: str, mock_url: str, **cache: Any) -> dict[str, Any]:
    tree = config_tree(
        redis_url,
        f"t{secrets.token_hex(5)}",
        mock_root=mock_url,
        # Slow retries: a failing leader stays in flight long enough for followers to join it.
        queue={"retry_base_delay_s": 0.3, "retry_max_delay_s": 0.6},
        cache={"max_temperature": 1.0, **cache},
    )
    for alias in CACHED_MODELS:
        tree["models"][alias]["cache"] = True
    tree["models"]["plain"] = {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}
    return tree


@pytest.fixture(scope="module")
def cache_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    tree = _tree(redis_server.url, mock_server)
    with running_stack(tmp_path_factory.mktemp("cache"), tree, ["openai", "gemini"]) as s:
        yield s


@pytest.fixture
def store(cache_stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(cache_stack.tree["redis"]["url"], decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def client(cache_stack: Stack, mock: MockControl) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=f"{cache_stack.url}/v1", api_key=TENANT_KEYS["acme"], max_retries=0, timeout=30
    ) as c:
        yield c


def _prefix(stack: Stack) -> str:
    return f"ag:{{{stack.tree['redis']['namespace']}}}:"


def _jobs(stack: Stack, store: redis.Redis, tenant: str = "acme") -> int:
    return cast(int, store.xlen(f"{_prefix(stack)}tjobs:{tenant}"))


def _upstream(mock: MockControl, marker: str) -> int:
    return sum(marker in orjson.dumps(r["body"]).decode() for r in mock.requests())


def _entry(stack: Stack, store: redis.Redis, body: dict[str, Any], tenant: str = "acme") -> Any:
    raw = cast(str | None, store.get(f"{_prefix(stack)}cache:{cache_digest(tenant, CHAT, body)}"))
    return orjson.loads(raw) if raw else None


def _unique(text: str) -> str:
    """A prompt no other test sends: entries and upstream calls are counted by it."""
    return f"{text} {secrets.token_hex(6)}"


def _ask(prompt: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": prompt}]


def _body(prompt: str, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": _ask(prompt), **extra}


def _http(stack: Stack, tenant: str = "acme", **headers: str) -> httpx.Client:
    auth = {"authorization": f"Bearer {TENANT_KEYS[tenant]}"}
    return httpx.Client(base_url=stack.url, headers={**auth, **headers}, timeout=30)


def test_a_hit_skips_the_queue_and_the_provider(
    cache_stack: Stack, client: OpenAI, mock: MockControl, store: redis.Redis
) -> None:
    prompt = _unique("Say hello")
    messages = _ask(prompt)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    assert first.headers["x-anygate-cache"] == "miss"
    assert first.headers["x-anygate-job-id"].startswith("job_")
    jobs = _jobs(cache_stack, store)
    again = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    assert again.headers["x-anygate-cache"] == "hit"
    assert "x-anygate-job-id" not in again.headers
    assert again.parse().model_dump() == first.parse().model_dump()  # the original id, too
    assert _upstream(mock, prompt) == 1
    assert _jobs(cache_stack, store) == jobs, "a hit enqueues no job"


def test_embeddings_are_cached_in_the_encoding_asked_for(client: OpenAI, mock: MockControl) -> None:
    text = _unique("embed me")
    first = client.embeddings.create(model="text-embedding-3-small", input=[text])
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=[text])
    assert raw.headers["x-anygate-cache"] == "hit"
    assert raw.parse().data[0].embedding == first.data[0].embedding
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=[text], encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(first.data[0].embedding, rel=1e-6)
    assert _upstream(mock, text) == 2, "another encoding is another entry"


def test_a_streamed_request_is_served_from_the_cache(client: OpenAI, mock: MockControl) -> None:
    prompt = _unique("Stream to me")
    messages = _ask(prompt)
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-anygate-cache"] == "hit"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        whole.choices[0].message.content
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]
    plain = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    )
    assert all(c.choices for c in plain), "no usage chunk unless asked for"
    assert _upstream(mock, prompt) == 1


def test_a_streamed_answer_is_stored_for_the_next_caller(client: OpenAI, mock: MockControl) -> None:
    prompt = _unique("Stream first")
    messages = _ask(prompt)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, stream=True
    )
    assert raw.headers["x-anygate-cache"] == "miss"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    again = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    assert again.headers["x-anygate-cache"] == "hit"
    assert again.parse().choices[0].message.content == text
    assert _upstream(mock, prompt) == 1


def test_cached_tool_calls_replay_as_streamed_deltas(client: OpenAI, mock: MockControl) -> None:
    prompt = _unique("Weather in Rome?")
    messages = _ask(prompt)
    whole = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    expected = whole.choices[0].message.tool_calls
    assert expected
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(d.id, d.function.name, d.function.arguments) for d in deltas] == [  # type: ignore[union-attr]
        (tc.id, tc.function.name, tc.function.arguments)
        for tc in expected  # type: ignore[union-attr]
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert _upstream(mock, prompt) == 1


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_gemini_sdk_whole_and_streamed_from_the_cache(
    cache_stack: Stack, mock: MockControl, api_version: str
) -> None:
    gemini = genai.Client(
        api_key=TENANT_KEYS["acme"],
        http_options=types.HttpOptions(base_url=cache_stack.url, api_version=api_version),
    )
    prompt = _unique("Say hello")
    whole = gemini.models.generate_content(model="gemini-2.5-flash", contents=prompt)
    again = gemini.models.generate_content(model="gemini-2.5-flash", contents=prompt)
    assert again.sdk_http_response is not None
    assert (again.sdk_http_response.headers or {})["x-anygate-cache"] == "hit"
    assert again.text == whole.text
    pieces = list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents=prompt))
    assert "".join(p.text or "" for p in pieces) == whole.text
    assert pieces[-1].usage_metadata is not None
    assert pieces[-1].usage_metadata.total_token_count == (
        whole.usage_metadata.total_token_count  # type: ignore[union-attr]
    )
    assert pieces[-1].candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert _upstream(mock, prompt) == 1


def test_gemini_embed_content_is_cached(cache_stack: Stack, mock: MockControl) -> None:
    gemini = genai.Client(
        api_key=TENANT_KEYS["acme"], http_options=types.HttpOptions(base_url=cache_stack.url)
    )
    text = _unique("embed")
    first = gemini.models.embed_content(model="text-embedding-3-small", contents=[text])
    again = gemini.models.embed_content(model="text-embedding-3-small", contents=[text])
    assert again.embeddings[0].values == first.embeddings[0].values  # type: ignore[index]
    assert _upstream(mock, text) == 1


def test_skip_bypasses_the_cache_and_refresh_replaces_the_entry(
    cache_stack: Stack, mock: MockControl, store: redis.Redis
) -> None:
    prompt = _unique("Refresh me")
    body = _body(prompt)
    with _http(cache_stack) as http:
        original = http.post(CHAT, json=body).json()
        skipped = http.post(CHAT, json=body, headers={"x-anygate-cache": "skip"})
        assert "x-anygate-cache" not in skipped.headers
        assert skipped.json()["id"] != original["id"]
        assert _entry(cache_stack, store, body)["id"] == original["id"], "skip writes nothing"
        refreshed = http.post(CHAT, json=body, headers={"x-anygate-cache": "refresh"})
        assert refreshed.headers["x-anygate-cache"] == "miss"
        assert refreshed.json()["id"] not in (original["id"], skipped.json()["id"])
        assert _entry(cache_stack, store, body)["id"] == refreshed.json()["id"]
        hit = http.post(CHAT, json=body)
        assert hit.headers["x-anygate-cache"] == "hit"
        assert hit.json()["id"] == refreshed.json()["id"]
    assert _upstream(mock, prompt) == 3


def test_another_tenant_never_gets_this_tenants_entry(
    cache_stack: Stack, mock: MockControl
) -> None:
    prompt = _unique("Mine only")
    body = _body(prompt)
    with _http(cache_stack) as acme, _http(cache_stack, "globex") as globex:
        mine = acme.post(CHAT, json=body).json()
        assert acme.post(CHAT, json=body).headers["x-anygate-cache"] == "hit"
        theirs = globex.post(CHAT, json=body)
        assert theirs.headers["x-anygate-cache"] == "miss"
        assert theirs.json()["id"] != mine["id"]
        assert globex.post(CHAT, json=body).json()["id"] == theirs.json()["id"]
    assert _upstream(mock, prompt) == 2


def test_hot_requests_and_models_not_opted_in_are_not_cached(
    cache_stack: Stack, mock: MockControl
) -> None:
    hot_prompt, plain_prompt = _unique("Be creative"), _unique("Plain")
    hot, plain = _body(hot_prompt, temperature=1.5), _body(plain_prompt, "plain")
    with _http(cache_stack) as http:
        for body in (hot, hot, plain, plain):
            response = http.post(CHAT, json=body)
            assert response.status_code == 200
            assert "x-anygate-cache" not in response.headers
        # The header opts a single request in; a hot one stays out even then.
        used = [http.post(CHAT, json=plain, headers={"x-anygate-cache": "use"}) for _ in "ab"]
        assert [r.headers["x-anygate-cache"] for r in used] == ["miss", "hit"]
        assert (
            "x-anygate-cache"
            not in http.post(CHAT, json=hot, headers={"x-anygate-cache": "use"}).headers
        )
    assert _upstream(mock, hot_prompt) == 3
    assert _upstream(mock, plain_prompt) == 3


def test_a_bad_header_value_is_a_400_naming_it(cache_stack: Stack, mock: MockControl) -> None:
    with _http(cache_stack, **{"x-anygate-cache": "always"}) as http:
        response = http.post(CHAT, json=_body("hi", "plain"))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-anygate-cache"
    assert mock.requests() == []


def test_a_failed_call_is_not_cached(
    cache_stack: Stack, mock: MockControl, store: redis.Redis
) -> None:
    prompt = _unique("Fail first")
    body = _body(prompt)
    mock.fault(fault="500")
    with _http(cache_stack) as http:
        assert http.post(CHAT, json=body).status_code == 502
        assert _entry(cache_stack, store, body) is None
        mock.reset()
        retried = http.post(CHAT, json=body)
    assert retried.status_code == 200
    assert retried.headers["x-anygate-cache"] == "miss"
    assert _upstream(mock, prompt) == 1


async def _together(stack: Stack, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    auth = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=auth, timeout=30) as http:
        return await asyncio.wait_for(
            asyncio.gather(*(http.post(CHAT, json=b) for b in bodies)), timeout=20
        )


async def test_identical_calls_in_flight_share_one_upstream_call(
    cache_stack: Stack, mock: MockControl, store: redis.Redis
) -> None:
    mock.settings(latency_ms=500)
    prompt = _unique("Everyone at once")
    body = _body(prompt)
    bodies = [body] * 5 + [{**body, "stream": True}] * 3
    jobs = _jobs(cache_stack, store)
    responses = await _together(cache_stack, bodies)
    assert _upstream(mock, prompt) == 1
    assert _jobs(cache_stack, store) == jobs + 1
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.headers["x-anygate-cache"] for r in responses) == ["hit"] * 7 + ["miss"]
    content = {r.json()["choices"][0]["message"]["content"] for r in responses[:5]}
    assert len(content) == 1
    for streamed in responses[5:]:
        assert streamed.text.endswith("data: [DONE]\n\n")
        text = "".join(
            orjson.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in streamed.text.split("\n\n")
            if line.startswith("data: {") and '"choices":[{' in line
        )
        assert text == responses[0].json()["choices"][0]["message"]["content"]


async def test_followers_of_a_failed_leader_make_their_own_calls(
    cache_stack: Stack, mock: MockControl
) -> None:
    """The leader's job fails after its three attempts (the only faults there are); the
    followers neither hang nor get its error: each calls upstream itself, and succeeds."""
    mock.fault(fault="500", times=3)
    prompt = _unique("Leader fails")
    body = _body(prompt)
    started = time.monotonic()
    responses = await _together(cache_stack, [body] * 4)
    assert time.monotonic() - started < 15
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 502]
    assert all(r.headers["x-anygate-cache"] == "miss" for r in responses if r.status_code == 200)
    assert _upstream(mock, prompt) == 3 + 3


def test_a_leader_that_vanished_before_enqueueing_is_not_waited_for(
    cache_stack: Stack, mock: MockControl, store: redis.Redis
) -> None:
    prompt = _unique("Orphaned lead")
    body = _body(prompt)
    lead = f"{_prefix(cache_stack)}cachelead:{cache_digest('acme', CHAT, body)}"
    store.set(lead, "job_gone", px=60_000)  # as if its caller died between lead and enqueue
    started = time.monotonic()
    with _http(cache_stack) as http:
        response = http.post(CHAT, json=body)
    assert response.status_code == 200
    assert response.headers["x-anygate-cache"] == "miss"
    assert time.monotonic() - started < 5
    assert _upstream(mock, prompt) == 1


def test_entries_expire_after_their_ttl(
    tmp_path: Path, redis_server: EmbeddedRedis, mock: MockControl
) -> None:
    tree = _tree(redis_server.url, mock.url, ttl_s=1)
    prompt = _unique("Short-lived")
    body = _body(prompt)
    with running_stack(tmp_path, tree, ["openai"]) as stack, _http(stack) as http:
        assert http.post(CHAT, json=body).headers["x-anygate-cache"] == "miss"
        assert http.post(CHAT, json=body).headers["x-anygate-cache"] == "hit"
        time.sleep(1.2)  # the point: the entry's 1 s TTL runs out (its length is under test)
        assert http.post(CHAT, json=body).headers["x-anygate-cache"] == "miss"
    assert _upstream(mock, prompt) == 2
