"""Gemini ``:countTokens`` through the gateway (docs/api.md#counttokens): google-genai's
``count_tokens`` against a real stack (API, a worker per pool, Redis, the mock over HTTP), on
both API versions.

A Gemini alias's count is the provider's, asked by a worker (the mock's log shows the call);
any other alias is a 400 that says why, and nothing reaches a provider.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.mock_provider.request_log import key_fingerprint
from tests.support.configs import TENANT_KEYS, config_tree, hash_key
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

ACME = TENANT_KEYS["acme"]
GOOGLE_AUTH = {"x-goog-api-key": ACME}
VERSIONS = ["v1", "v1beta"]
PRO_ALIAS = "pro"
"""A Gemini-first route whose upstream model is not its alias, with an OpenAI fallback step."""
OPENAI_FIRST = "openai-first"
"""A route whose first deployment is OpenAI's, though it has a Gemini one too."""
FLAKY = "flaky-gemini"
"""A Gemini deployment the mock fails, an OpenAI one, then a Gemini fallback alias."""
BROKEN_UPSTREAM = "gemini-broken"
HYBRID_KEY = "sk-test-hybrid-0123456789"
CLIENT_GEMINI_KEY = "gk-client-own-0123456789"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    tree = config_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_root=mock_server)
    tree["tenants"].append(
        {"id": "hy", "api_key_sha256": [hash_key(HYBRID_KEY)], "auth_mode": "hybrid"}
    )
    key_file = tmp_path_factory.mktemp("secrets") / "encryption.key"
    key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    tree["security"] = {"encryption_key": f"file:{key_file}"}
    tree["models"].update(
        {
            PRO_ALIAS: {
                "deployments": [
                    {"provider": "gemini", "model": "gemini-2.5-pro"},
                    {"provider": "openai", "model": "gpt-4o-mini"},
                ],
            },
            OPENAI_FIRST: {
                "deployments": [
                    {"provider": "openai", "model": "gpt-4o-mini"},
                    {"provider": "gemini", "model": "gemini-2.5-flash"},
                ],
            },
            FLAKY: {
                "deployments": [
                    {"provider": "gemini", "model": BROKEN_UPSTREAM},
                    {"provider": "openai", "model": "gpt-4o-mini"},
                ],
                "fallbacks": ["gemini-2.5-flash"],
            },
        }
    )
    with running_stack(tmp_path_factory.mktemp("count"), tree, ["openai", "gemini"]) as s:
        yield s


@pytest.fixture(params=VERSIONS)
def client(request: pytest.FixtureRequest, stack: Stack, mock: MockControl) -> genai.Client:
    return genai.Client(
        api_key=ACME,
        http_options=types.HttpOptions(base_url=stack.url, api_version=request.param),
    )


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    """The Gemini surface's caller (a Gemini-style key)."""
    with httpx.Client(base_url=stack.url, headers=GOOGLE_AUTH, timeout=15) as client:
        yield client


@pytest.fixture
def native(stack: Stack) -> Iterator[httpx.Client]:
    """The job API's caller (a bearer key)."""
    bearer = {"authorization": f"Bearer {ACME}"}
    with httpx.Client(base_url=stack.url, headers=bearer, timeout=15) as client:
        yield client


def count_calls(mock: MockControl) -> list[dict[str, Any]]:
    return [r for r in mock.requests() if r["path"].endswith(":countTokens")]


# --- a Gemini alias: the provider's count --------------------------------------------------------


def test_the_count_is_the_providers_asked_by_a_worker(
    client: genai.Client, mock: MockControl
) -> None:
    mock.settings(prompt_tokens=4242)  # not a count anyone could estimate from the text
    response = client.models.count_tokens(model="gemini-2.5-flash", contents="How many tokens?")
    assert response.total_tokens == 4242
    [call] = count_calls(mock)
    assert call["provider"] == "gemini"
    assert call["path"] == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert call["body"] == {"contents": [{"parts": [{"text": "How many tokens?"}], "role": "user"}]}
    assert call["key_fingerprint"] == key_fingerprint("mock-key")  # the gateway's, not acme's


def test_the_answer_is_passed_on_as_the_provider_sent_it(
    http: httpx.Client, mock: MockControl
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "one two three"}]}]}
    answer = http.post("/v1beta/models/gemini-2.5-flash:countTokens", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "totalTokens": 3,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}],
    }


def test_the_job_is_interactive_and_charged_nothing(
    http: httpx.Client, native: httpx.Client, mock: MockControl
) -> None:
    body = {"contents": [{"parts": [{"text": "count me"}]}]}
    answer = http.post("/v1/models/gemini-2.5-flash:countTokens", json=body)
    assert answer.status_code == 200, answer.text
    job = native.get(f"/v1/jobs/{answer.headers['x-anygate-job-id']}").json()
    assert job["endpoint"] == "gemini:countTokens"
    assert job["priority"] == "interactive"
    assert job["provider"] == "gemini"
    assert job["status"] == "succeeded"
    assert job["result"] == answer.json()
    assert job["usage"] is None
    assert job["cost_usd"] is None


def test_a_generate_content_request_reaches_gemini_with_its_own_model_name(
    http: httpx.Client, mock: MockControl
) -> None:
    """The whole request is counted (system instruction included); the model inside it is
    the upstream's, not the alias."""
    body = {
        "generateContentRequest": {
            "model": f"models/{PRO_ALIAS}",
            "contents": [{"role": "user", "parts": [{"text": "one two three"}]}],
            "systemInstruction": {"parts": [{"text": "four five"}]},
        }
    }
    answer = http.post(f"/v1beta/models/{PRO_ALIAS}:countTokens", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["totalTokens"] == 5
    [call] = count_calls(mock)
    assert call["path"] == "/v1beta/models/gemini-2.5-pro:countTokens"
    assert call["body"]["generateContentRequest"]["model"] == "models/gemini-2.5-pro"
    assert call["body"]["generateContentRequest"]["systemInstruction"] == {
        "parts": [{"text": "four five"}]
    }


def test_a_clients_own_gemini_key_pays_for_the_count(stack: Stack, mock: MockControl) -> None:
    """BYOK as for any call: the SDK's api_key is the client's Gemini key, the gateway key
    travels in x-anygate-api-key."""
    byok = genai.Client(
        api_key=CLIENT_GEMINI_KEY,
        http_options=types.HttpOptions(
            base_url=stack.url, headers={"x-anygate-api-key": HYBRID_KEY}
        ),
    )
    response = byok.models.count_tokens(model="gemini-2.5-flash", contents="my own key")
    assert response.total_tokens == 3
    [call] = count_calls(mock)
    assert call["key_fingerprint"] == key_fingerprint(CLIENT_GEMINI_KEY)


def test_an_embedding_alias_served_by_gemini_counts_too(
    client: genai.Client, mock: MockControl
) -> None:
    response = client.models.count_tokens(model="gemini-embedding-001", contents="embed these")
    assert response.total_tokens == 2
    [call] = count_calls(mock)
    assert call["path"] == "/v1beta/models/gemini-embedding-001:countTokens"


def test_a_failing_gemini_deployment_falls_back_to_the_next_gemini_one(
    http: httpx.Client, mock: MockControl
) -> None:
    """The route's OpenAI step is skipped: only a Gemini model can count."""
    mock.fault(fault="503", model=BROKEN_UPSTREAM)
    body = {"contents": [{"parts": [{"text": "fall back"}]}]}
    answer = http.post(f"/v1beta/models/{FLAKY}:countTokens", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["totalTokens"] == 2
    paths = [r["path"] for r in mock.requests()]
    assert f"/v1beta/models/{BROKEN_UPSTREAM}:countTokens" in paths
    assert paths[-1] == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert all(r["provider"] == "gemini" for r in mock.requests())


def test_a_429_on_counting_does_not_pause_the_deployments_generation(
    client: genai.Client, mock: MockControl
) -> None:
    """Gemini meters countTokens apart: its 429 makes the count wait (here longer than a
    synchronous caller is kept: a 503), while generateContent on the same deployment goes on."""
    mock.fault(fault="429", path_contains=":countTokens", retry_after=60, times=1)
    with pytest.raises(errors.ServerError) as info:
        client.models.count_tokens(model="gemini-2.5-flash", contents="too many")
    assert info.value.code == 503
    generated = client.models.generate_content(model="gemini-2.5-flash", contents="still there?")
    assert generated.text


# --- aliases that cannot count --------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-4o-mini", OPENAI_FIRST, "text-embedding-3-small"])
def test_an_alias_not_served_by_gemini_is_a_400_that_says_why(
    client: genai.Client, mock: MockControl, model: str
) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.models.count_tokens(model=model, contents="hi")
    assert info.value.code == 400
    assert info.value.status == "INVALID_ARGUMENT"
    message = info.value.message or ""
    assert f"models/{model} does not support countTokens" in message
    assert "(openai) has no token-counting endpoint" in message
    assert "does not estimate token counts" in message
    assert mock.requests() == []


def test_an_unknown_model_is_a_404(client: genai.Client, mock: MockControl) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.models.count_tokens(model="gemini-imaginary", contents="hi")
    assert info.value.code == 404
    assert info.value.status == "NOT_FOUND"
    assert mock.requests() == []


# --- bad bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "contents: is required (or generateContentRequest)"),
        ({"contents": "hi"}, "contents: must be an array"),
        ({"contents": ["hi"]}, "contents[0]: must be a JSON object"),
        ({"contents": [{"parts": "hi"}]}, "contents[0].parts: must be an array"),
        ({"contents": [{"parts": [7]}]}, "contents[0].parts[0]: must be a JSON object"),
        (
            {"contents": [], "systemInstruction": {"parts": [{"text": "x"}]}},
            "systemInstruction: is not a field of CountTokensRequest; send it inside "
            "generateContentRequest",
        ),
        ({"contents": [], "temperature": 1}, "temperature: is not a field of CountTokensRequest"),
        (
            {"generateContentRequest": {"systemInstruction": {"parts": [{"text": "x"}]}}},
            "generateContentRequest.contents: is required",
        ),
        (
            {"generate_content_request": {"model": "models/other", "contents": []}},
            "generate_content_request.model: must be the model in the URL",
        ),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(
    http: httpx.Client, mock: MockControl, version: str, body: dict[str, Any], named: str
) -> None:
    answer = http.post(f"/{version}/models/gemini-2.5-flash:countTokens", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert named in error["message"]
    assert count_calls(mock) == []


def test_the_job_api_does_not_take_the_internal_endpoint(native: httpx.Client) -> None:
    submit = {
        "endpoint": "gemini:countTokens",
        "body": {"model": "gemini-2.5-flash", "contents": [{"parts": [{"text": "hi"}]}]},
    }
    answer = native.post("/v1/jobs", json=submit)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "endpoint"
