"""One body schema, with the providers' documented bounds, for every way a request comes in:
``POST /v1/jobs``, the OpenAI-compatible endpoints and the Gemini surface. A value out of bounds
is a 400 naming the field before any job exists (nothing reaches the provider, nothing can fail
into the dead letters); the bounds themselves are accepted, so no valid request is refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.mock import MockControl
from tests.support.stack import Stack

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
EMBEDDINGS_BODY = {"model": "text-embedding-3-small", "input": "hi"}
PATHS = ["jobs", "compatible"]

Case = tuple[dict[str, Any], str]
"""The fields changed in a valid body, and the field the refusal must name."""


async def send(
    client: httpx.AsyncClient, path: str, endpoint: str, changes: dict[str, Any]
) -> httpx.Response:
    body = {**(CHAT_BODY if endpoint == CHAT else EMBEDDINGS_BODY), **changes}
    if path == "jobs":
        return await client.post("/v1/jobs", json={"endpoint": endpoint, "body": body})
    return await client.post(endpoint, json=body)


async def check_bounds(
    stack: Stack,
    mock: MockControl,
    path: str,
    endpoint: str,
    refused: list[Case],
    accepted: list[dict[str, Any]],
) -> None:
    """Every refused case is a 400 naming its field (``body.<field>`` on /v1/jobs), with no job
    and no upstream call; every accepted case is answered (the job succeeds)."""
    async with stack.client() as client:
        for changes, field in refused:
            response = await send(client, path, endpoint, changes)
            assert response.status_code == 400, (changes, response.text)
            error = response.json()["error"]
            param = f"body.{field}" if path == "jobs" else field
            assert (error["type"], error["param"]) == ("invalid_request_error", param), changes
            assert error["message"].startswith(f"{param}: ")
            assert "x-anygate-job-id" not in response.headers, changes
        assert mock.requests() == [], "a refused request reached the provider"
        for changes in accepted:
            response = await send(client, path, endpoint, changes)
            if path == "compatible":
                assert response.status_code == 200, (changes, response.text)
                continue
            assert response.status_code == 202, (changes, response.text)
            job_id = response.json()["id"]
            done = (await client.get(f"/v1/jobs/{job_id}", params={"wait": 10})).json()
            assert done["status"] == "succeeded", (changes, done["error"])


@pytest.mark.parametrize("path", PATHS)
async def test_n_is_an_integer_from_1_to_128(
    full_stack: Stack, mock: MockControl, path: str
) -> None:
    """The issue's values: -1 and 10**9 went to the provider, and 2**70 (a float once parsed)
    was forwarded as 1.1805916207174113e+21."""
    refused: list[Case] = [
        ({"n": -1}, "n"),
        ({"n": 10**9}, "n"),
        ({"n": 2**70}, "n"),
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"n": 1e21}, "n"),
        ({"n": 2.0}, "n"),
        ({"n": True}, "n"),
        ({"n": "2"}, "n"),
    ]
    await check_bounds(full_stack, mock, path, CHAT, refused, [{"n": 1}, {"n": 128}, {"n": None}])


@pytest.mark.parametrize("path", PATHS)
async def test_token_limits_are_positive_64_bit_integers(
    full_stack: Stack, mock: MockControl, path: str
) -> None:
    refused: list[Case] = []
    for field in ("max_tokens", "max_completion_tokens"):
        refused += [({field: v}, field) for v in (0, -1, 2**63, 2**70, 1e21, 16.5)]
    accepted = [{"max_tokens": 1}, {"max_completion_tokens": 2**63 - 1}]
    await check_bounds(full_stack, mock, path, CHAT, refused, accepted)


@pytest.mark.parametrize("path", PATHS)
async def test_sampling_parameters_are_within_openais_ranges(
    full_stack: Stack, mock: MockControl, path: str
) -> None:
    refused: list[Case] = [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": 1e300}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": -1}, "top_p"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"seed": 2**63}, "seed"),
        ({"logit_bias": {"50256": 101}}, "logit_bias.50256"),
    ]
    accepted = [
        {"temperature": 0, "top_p": 1},
        {"temperature": 2, "top_p": 0.0, "frequency_penalty": -2, "presence_penalty": 2},
        {"seed": -(2**63), "logit_bias": {"50256": -100}},
    ]
    await check_bounds(full_stack, mock, path, CHAT, refused, accepted)


@pytest.mark.parametrize("path", PATHS)
async def test_logprobs_is_a_boolean_and_top_logprobs_at_most_20(
    full_stack: Stack, mock: MockControl, path: str
) -> None:
    refused: list[Case] = [
        ({"logprobs": 1}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 2**70}, "top_logprobs"),
    ]
    accepted = [{"logprobs": True, "top_logprobs": 0}, {"logprobs": True, "top_logprobs": 20}]
    await check_bounds(full_stack, mock, path, CHAT, refused, accepted)


@pytest.mark.parametrize("path", PATHS)
async def test_stop_is_a_string_or_up_to_four(
    full_stack: Stack, mock: MockControl, path: str
) -> None:
    refused: list[Case] = [
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ["x"] * 10_000}, "stop"),
        ({"stop": []}, "stop"),
        ({"stop": [1]}, "stop"),
        ({"stop": 5}, "stop"),
    ]
    accepted = [{"stop": "zzz"}, {"stop": ["w", "x", "y", "zz"]}, {"stop": None}]
    await check_bounds(full_stack, mock, path, CHAT, refused, accepted)


@pytest.mark.parametrize("path", PATHS)
async def test_embedding_inputs_are_1_to_2048_non_empty_items(
    full_stack: Stack, mock: MockControl, path: str
) -> None:
    refused: list[Case] = [
        ({"input": ["x"] * 2049}, "input"),
        ({"input": [[1, 2]] * 2049}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["a", ""]}, "input"),
        ({"input": [[]]}, "input"),
        ({"input": ["a", [1]]}, "input"),
        ({"input": [[1, -1]]}, "input"),
        ({"input": [1.5, 2]}, "input"),
        ({"input": [[2**70]]}, "input"),
        ({"input": 5}, "input"),
    ]
    accepted = [
        {"input": ["x"] * 2048},
        {"input": [[1, 2]] * 3},
        {"input": list(range(5000))},  # one token array: its length is the model's business
    ]
    await check_bounds(full_stack, mock, path, EMBEDDINGS, refused, accepted)


@pytest.mark.parametrize("path", PATHS)
async def test_dimensions_is_a_positive_integer(
    full_stack: Stack, mock: MockControl, path: str
) -> None:
    refused: list[Case] = [
        ({"dimensions": v}, "dimensions") for v in (0, -1, 10**9, 2**70, 8.0, 65_537)
    ]
    accepted = [{"dimensions": 1}, {"dimensions": 3072}]
    await check_bounds(full_stack, mock, path, EMBEDDINGS, refused, accepted)


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("generateContent", {"generationConfig": {"candidateCount": -1}}, "candidateCount"),
        ("generateContent", {"generationConfig": {"candidateCount": 10**9}}, "candidateCount"),
        ("streamGenerateContent", {"generationConfig": {"maxOutputTokens": 0}}, "maxOutputTokens"),
        ("generateContent", {"generationConfig": {"temperature": 2.5}}, "temperature"),
        ("generateContent", {"generationConfig": {"stopSequences": []}}, None),  # sets nothing
        ("embedContent", {"outputDimensionality": 0}, "outputDimensionality"),
        (
            "batchEmbedContents",
            {"requests": [{"content": {"parts": [{"text": "x"}]}}] * 2049},
            "requests",
        ),
    ],
)
async def test_the_gemini_surface_is_held_to_the_same_schema(
    full_stack: Stack, mock: MockControl, action: str, body: dict[str, Any], field: str | None
) -> None:
    """A Gemini request is translated into the same OpenAI body, checked by the same schema;
    the refusal (in Google's shape) names the field the client sent."""
    embed = "embed" in action.lower()
    request: dict[str, Any] = {} if embed else {"contents": [{"parts": [{"text": "hi"}]}]}
    if action == "embedContent":
        request["content"] = {"parts": [{"text": "hi"}]}
    model = "gemini-embedding-001" if embed else "gemini-2.5-flash"
    async with full_stack.client() as client:
        response = await client.post(
            f"/v1beta/models/{model}:{action}", json={**request, **body}, params={"alt": "sse"}
        )
    if field is None:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert field in error["message"].split(":")[0], error["message"]
    assert mock.requests() == [], "a refused request reached the provider"
