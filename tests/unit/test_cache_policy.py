"""The response cache's pure decisions: modes, cacheability, keys, and the replayed stream."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from anygate.api.cache_policy import (
    GLOBAL_SCOPE,
    CacheMode,
    cache_digest,
    cache_mode,
    cache_scope,
    cacheable,
    completion_chunks,
    replay,
    replay_events,
)
from anygate.api.gemini_compat import _gemini_render
from anygate.api.openai_compat import _chat_render
from anygate.broker.errors import InvalidRequestError
from anygate.workers.assemble import assemble_chat_completion

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hi", "name": "bob"}],
    "temperature": 0,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def completion(*messages: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": None, **m},
                "finish_reason": finish,
                "logprobs": None,
            }
            for i, m in enumerate(messages)
        ],
        "usage": USAGE,
    }


# --- modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "opted_in", "mode"),
    [
        (None, False, CacheMode.OFF),
        (None, True, CacheMode.USE),
        ("use", False, CacheMode.USE),
        (" Use ", False, CacheMode.USE),
        ("skip", True, CacheMode.OFF),
        ("refresh", False, CacheMode.REFRESH),
        ("REFRESH", True, CacheMode.REFRESH),
    ],
)
def test_header_and_model_opt_in_give_the_mode(
    header: str | None, opted_in: bool, mode: CacheMode
) -> None:
    assert cache_mode(header, model_opted_in=opted_in) is mode


@pytest.mark.parametrize("value", ["", "yes", "no-store", "hit"])
def test_unknown_header_value_is_a_400_naming_the_header(value: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        cache_mode(value, model_opted_in=True)
    assert info.value.status == 400
    assert info.value.param == "x-anygate-cache"
    assert "x-anygate-cache" in info.value.message


# --- cacheability -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("temperature", "limit", "expected"),
    [
        (None, None, True),
        (1.9, None, True),
        (None, 1.0, True),  # absent counts as 1
        (None, 0.5, False),
        (0.5, 0.5, True),
        (0, 0.2, True),
        (0.7, 0.5, False),
        (True, 2.0, False),  # not a number: never guessed cacheable
    ],
)
def test_temperature_rule(temperature: object, limit: float | None, expected: bool) -> None:
    body: dict[str, Any] = {"model": "m", "messages": []}
    if temperature is not None:
        body["temperature"] = temperature
    assert cacheable(CHAT, body, limit) is expected


def test_embeddings_do_not_sample_so_are_always_cacheable() -> None:
    assert cacheable(EMBEDDINGS, {"model": "e", "input": "x", "temperature": 2}, 0.0)


def test_n_above_one_is_cacheable() -> None:
    assert cacheable(CHAT, {**BODY, "n": 3}, 0.5)


# --- keys -------------------------------------------------------------------------------------


def test_key_is_a_stable_sha256() -> None:
    digest = cache_digest("acme", CHAT, BODY)
    assert digest == cache_digest("acme", CHAT, copy.deepcopy(BODY))
    assert len(digest) == 64
    int(digest, 16)


def test_field_order_is_irrelevant_at_every_depth() -> None:
    reordered = orjson.loads(orjson.dumps(dict(reversed(list(BODY.items())))))
    reordered["messages"] = [dict(reversed(list(m.items()))) for m in reordered["messages"]]
    reordered["response_format"] = dict(reversed(list(BODY["response_format"].items())))
    assert list(reordered) != list(BODY)
    assert cache_digest("acme", CHAT, reordered) == cache_digest("acme", CHAT, BODY)


def test_delivery_fields_are_irrelevant() -> None:
    streamed = {**BODY, "stream": True, "stream_options": {"include_usage": True}, "user": "u1"}
    assert cache_digest("acme", CHAT, streamed) == cache_digest("acme", CHAT, BODY)


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.1},
        {"model": "gpt-4o"},
        {"messages": [{"role": "user", "content": "hi!", "name": "bob"}]},
        {"n": 2},
        {"seed": 7},
    ],
)
def test_anything_else_changes_the_key(change: dict[str, Any]) -> None:
    assert cache_digest("acme", CHAT, {**BODY, **change}) != cache_digest("acme", CHAT, BODY)


def test_endpoint_is_part_of_the_key() -> None:
    body = {"model": "m", "input": "x"}
    assert cache_digest("acme", CHAT, body) != cache_digest("acme", EMBEDDINGS, body)


def test_tenant_scope_keeps_tenants_apart_global_scope_does_not() -> None:
    acme, globex = cache_scope("acme", "tenant"), cache_scope("globex", "tenant")
    assert cache_digest(acme, CHAT, BODY) != cache_digest(globex, CHAT, BODY)
    assert cache_scope("acme", "global") == cache_scope("globex", "global") == GLOBAL_SCOPE
    # The global scope is no tenant's: a tenant can never name itself into it.
    assert cache_digest(GLOBAL_SCOPE, CHAT, BODY) != cache_digest(acme, CHAT, BODY)


# --- the replayed stream ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cached",
    [
        completion({"content": "Hello there"}),
        completion(
            {"content": None, "tool_calls": [CALL, {**CALL, "id": "call_2"}]}, finish="tool_calls"
        ),
        completion({"content": "one"}, {"content": "two"}),  # n=2
        completion({"content": None, "refusal": "no"}),
    ],
    ids=["text", "tool_calls", "n2", "refusal"],
)
def test_chunks_fold_back_into_the_cached_completion(cached: dict[str, Any]) -> None:
    assert assemble_chat_completion(completion_chunks(cached)) == cached


def test_chunks_are_role_content_finish_then_usage() -> None:
    chunks = completion_chunks(completion({"content": "Hello"}))
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 4
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hello"}
    assert chunks[2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert chunks[3]["choices"] == []
    assert chunks[3]["usage"] == USAGE
    assert {c["id"] for c in chunks} == {"chatcmpl-1"}


def test_tool_calls_replay_as_indexed_deltas_with_their_thought_signatures() -> None:
    signed = {**CALL, "extra_content": {"google": {"thought_signature": "sig"}}}
    chunks = completion_chunks(completion({"tool_calls": [signed, CALL]}, finish="tool_calls"))
    deltas = chunks[1]["choices"][0]["delta"]["tool_calls"]
    assert [d["index"] for d in deltas] == [0, 1]
    assert deltas[0]["function"] == CALL["function"]
    assert deltas[0]["extra_content"] == {"google": {"thought_signature": "sig"}}
    assert "extra_content" not in deltas[1]
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"


def test_events_end_with_completed_carrying_the_result() -> None:
    cached = completion({"content": "Hello"})
    events = replay_events(cached)
    assert [e.type for e in events] == ["chunk"] * 4 + ["completed"]
    assert orjson.loads(events[-1].data)["result"] == cached
    assert len({e.id for e in events}) == len(events)


def _sse_data(raw: bytes) -> list[str]:
    frames = raw.decode().replace("\r\n", "\n").split("\n\n")
    return [frame[6:] for frame in frames if frame.startswith("data: ")]


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_replay_ends_like_a_live_stream(include_usage: bool) -> None:
    raw = replay(
        replay_events(completion({"content": "Hello"})), _chat_render("", include_usage), None
    )
    data = _sse_data(raw)
    assert data[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == "Hello"
    )
    assert any(c.get("usage") for c in chunks) is include_usage


def test_gemini_sse_replay_carries_text_finish_and_usage() -> None:
    render, tail = _gemini_render("", sse=True)
    pieces = [
        orjson.loads(d)
        for d in _sse_data(replay(replay_events(completion({"content": "Hello"})), render, tail))
    ]
    assert tail is None
    text = "".join(
        p["text"] for x in pieces for c in x["candidates"] for p in c["content"]["parts"]
    )
    assert text == "Hello"
    assert pieces[-1]["candidates"][0]["finishReason"] == "STOP"
    assert pieces[-1]["usageMetadata"]["totalTokenCount"] == 12


def test_gemini_array_replay_streams_tool_calls_as_function_calls() -> None:
    render, tail = _gemini_render("", sse=False)
    cached = completion({"tool_calls": [CALL]}, finish="tool_calls")
    pieces = orjson.loads(replay(replay_events(cached), render, tail))
    calls = [
        p["functionCall"]
        for x in pieces
        for c in x["candidates"]
        for p in c["content"]["parts"]
        if "functionCall" in p
    ]
    assert calls == [{"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}]
