"""The mock's rate limits over real HTTP: the 429s the official SDKs see, and the audit trail."""

from __future__ import annotations

import hashlib
import re
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

from tests.support.mock import MockControl
from tests.support.rate_audit import max_in_window

WINDOW_S = 1.5
MESSAGES: Any = [{"role": "user", "content": "hi"}]
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
CONTENTS = {"contents": [{"parts": [{"text": "hi"}]}]}
DURATION = r"\d+(\.\d+)?m?s"


@pytest.fixture
def oai(mock: MockControl) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{mock.url}/v1", api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def google(mock: MockControl) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.url, headers={"x-goog-api-key": "k"}, timeout=5) as client:
        yield client


def chat(oai: OpenAI, **fields: Any) -> Any:
    return oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, **fields
    )


def test_openai_request_over_the_rpm_is_a_rate_limit_error_until_the_window_moves(
    oai: OpenAI, mock: MockControl
) -> None:
    mock.set_rate_limits(rpm=3, window_s=WINDOW_S)
    admitted = [chat(oai) for _ in range(3)]

    with pytest.raises(openai.RateLimitError) as caught:
        chat(oai)

    assert [r.headers["x-ratelimit-remaining-requests"] for r in admitted] == ["2", "1", "0"]
    assert admitted[0].headers["x-ratelimit-limit-requests"] == "3"
    assert "x-ratelimit-limit-tokens" not in admitted[0].headers
    refused = caught.value.response
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "requests",
        "rate_limit_exceeded",
        None,
    )
    assert re.fullmatch(
        r"Rate limit reached for gpt-4o-mini in organization org-mock on requests per min \(RPM\):"
        rf" Limit 3, Used 3, Requested 1\. Please try again in {DURATION}\. Visit .*",
        error["message"],
    )
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert re.fullmatch(DURATION, refused.headers["x-ratelimit-reset-requests"])
    retry_after = float(refused.headers["retry-after"])
    assert 0 < retry_after <= WINDOW_S
    time.sleep(retry_after)  # the point: exactly the Retry-After the mock asked for
    assert chat(oai).http_response.status_code == 200
    entries = mock.requests()
    assert [entry["status"] for entry in entries] == [200, 200, 200, 429, 200]
    assert max_in_window(entries, WINDOW_S, statuses={200}) == 3


def test_openai_stream_is_refused_before_any_stream_byte(oai: OpenAI, mock: MockControl) -> None:
    mock.set_rate_limits(rpm=1, window_s=WINDOW_S)
    chat(oai)

    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with httpx.stream(
        "POST",
        f"{mock.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        headers={"authorization": "Bearer k"},
    ) as response:
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/json"
        assert response.read().startswith(b'{"error":')


def test_openai_tokens_are_charged_as_reported_and_refused_over_the_tpm(
    oai: OpenAI, mock: MockControl
) -> None:
    mock.settings(prompt_tokens=10, completion_tokens=5)
    mock.set_rate_limits(tpm=40, window_s=WINDOW_S)
    admitted = [chat(oai) for _ in range(2)]

    with pytest.raises(openai.RateLimitError) as throttled:
        chat(oai)
    mock.settings(prompt_tokens=50)
    with pytest.raises(openai.RateLimitError) as too_large:
        chat(oai)

    assert [r.parse().usage.total_tokens for r in admitted] == [15, 15]
    assert [r.headers["x-ratelimit-remaining-tokens"] for r in admitted] == ["25", "10"]
    error = throttled.value.response.json()["error"]
    assert error["type"] == "tokens"
    assert "on tokens per min (TPM): Limit 40, Used 30, Requested 15. Please" in error["message"]
    message = too_large.value.response.json()["error"]["message"]
    assert message.startswith(
        "Request too large for gpt-4o-mini in organization org-mock on tokens per min (TPM):"
        " Limit 40, Requested 55. The input or output tokens must be reduced"
    )
    assert "retry-after" not in too_large.value.response.headers
    entries = mock.requests()
    assert [(e["status"], e["tokens"], e["rate_limited"]) for e in entries] == [
        (200, 15, None),
        (200, 15, None),
        (429, 0, "tokens"),
        (429, 0, "too_large"),
    ]
    assert max_in_window(entries, WINDOW_S, tokens=True) == 30


def test_gemini_request_over_the_rpm_is_resource_exhausted_with_retry_info(
    google: httpx.Client, mock: MockControl
) -> None:
    mock.set_rate_limits(rpm=2, window_s=WINDOW_S)
    admitted = [google.post(GENERATE, json=CONTENTS) for _ in range(2)]

    refused = google.post(GENERATE, json=CONTENTS)
    stream = google.post(GENERATE.replace("generate", "streamGenerate") + "?alt=sse", json=CONTENTS)

    assert [r.status_code for r in admitted] == [200, 200]
    assert not any(name.startswith("x-ratelimit") for name in admitted[0].headers)
    error = refused.json()["error"]
    assert (refused.status_code, error["code"], error["status"]) == (429, 429, "RESOURCE_EXHAUSTED")
    retry_info = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert len(retry_info) == 1
    delay = retry_info[0]["retryDelay"]
    assert re.fullmatch(r"\d+(\.\d+)?s", delay)
    assert 0 < float(delay[:-1]) <= WINDOW_S
    assert (stream.status_code, stream.headers["content-type"]) == (
        429,
        "application/json; charset=UTF-8",
    )
    time.sleep(float(delay[:-1]) + 0.01)  # the point: exactly the retryDelay it asked for
    assert google.post(GENERATE, json=CONTENTS).status_code == 200


def test_gemini_sdk_sees_a_429_client_error(mock: MockControl) -> None:
    mock.set_rate_limits(rpm=1, window_s=WINDOW_S)
    options = types.HttpOptions(base_url=mock.url, api_version="v1beta")
    with genai.Client(api_key="k", http_options=options) as client:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        with pytest.raises(genai_errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")

    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_log_entries_carry_arrival_status_tokens_and_a_key_fingerprint(
    oai: OpenAI, google: httpx.Client, mock: MockControl
) -> None:
    mock.set_rate_limits(rpm=1, window_s=WINDOW_S)
    usage = chat(oai).parse().usage.total_tokens
    gemini = google.post(GENERATE, json=CONTENTS).json()["usageMetadata"]["totalTokenCount"]
    with pytest.raises(openai.RateLimitError):
        chat(oai)

    entries = mock.requests()

    assert [(e["provider"], e["status"], e["tokens"]) for e in entries] == [
        ("openai", 200, usage),
        ("gemini", 200, gemini),
        ("openai", 429, 0),
    ]
    fingerprint = hashlib.sha256(b"k").hexdigest()[:8]
    assert {entry["key_fingerprint"] for entry in entries} == {fingerprint}
    for entry in entries:
        assert entry["started_at"] <= entry["arrived_at"] <= entry["finished_at"]
    assert entries[0]["arrived_at"] < entries[1]["arrived_at"] < entries[2]["arrived_at"]
