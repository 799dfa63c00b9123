"""Both model lists say what each alias can do (docs/api.md#model-capabilities), and both SDKs
still parse them: openai's ``client.models.list()`` (OpenAI's shape plus an ``anygate``
object) and google-genai's (``supportedGenerationMethods`` exactly as served)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types
from openai import OpenAI

from tests.support.configs import TENANT_KEYS
from tests.support.stack import Stack

ACME = TENANT_KEYS["acme"]
CHAT = ["generateContent", "streamGenerateContent"]
EMBED = ["embedContent", "batchEmbedContents"]

EXPECTED: dict[str, dict[str, Any]] = {
    "gpt-4o-mini": {
        "kind": "chat",
        "streaming": True,
        "providers": ["openai"],
        "fallbacks": [],
        "count_tokens": False,
        "cache": False,
        "batch_api": False,
    },
    "text-embedding-3-small": {
        "kind": "embedding",
        "streaming": False,
        "providers": ["openai"],
        "fallbacks": [],
        "count_tokens": False,
        "cache": False,
        "batch_api": False,
    },
    "gemini-2.5-flash": {
        "kind": "chat",
        "streaming": True,
        "providers": ["gemini"],
        "fallbacks": [],
        "count_tokens": True,
        "cache": False,
        "batch_api": False,
    },
    "gemini-embedding-001": {
        "kind": "embedding",
        "streaming": False,
        "providers": ["gemini"],
        "fallbacks": [],
        "count_tokens": True,
        "cache": False,
        "batch_api": False,
    },
    "resilient": {
        "kind": "chat",
        "streaming": True,
        "providers": ["openai"],
        "fallbacks": ["gemini-2.5-flash"],
        "count_tokens": False,
        "cache": False,
        "batch_api": False,
    },
}
METHODS = {
    "gpt-4o-mini": CHAT,
    "text-embedding-3-small": EMBED,
    "gemini-2.5-flash": [*CHAT, "countTokens"],
    "gemini-embedding-001": [*EMBED, "countTokens"],
    "resilient": CHAT,
}


@pytest.fixture
def openai_client(full_stack: Stack) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{full_stack.url}/v1", api_key=ACME, max_retries=0, timeout=30) as c:
        yield c


@pytest.fixture(params=["v1", "v1beta"])
def genai_client(request: pytest.FixtureRequest, full_stack: Stack) -> genai.Client:
    return genai.Client(
        api_key=ACME,
        http_options=types.HttpOptions(base_url=full_stack.url, api_version=request.param),
    )


def test_the_openai_sdk_parses_the_list_with_each_aliass_capabilities(
    openai_client: OpenAI, full_stack: Stack
) -> None:
    models = list(openai_client.models.list())
    assert {m.id for m in models} == set(full_stack.tree["models"])
    for model in models:
        assert model.object == "model"
        assert model.owned_by == full_stack.tree["models"][model.id]["deployments"][0]["provider"]
        assert (model.model_extra or {}).get("anygate") == EXPECTED[model.id], model.id


def test_the_openai_sdk_parses_one_model(openai_client: OpenAI) -> None:
    model = openai_client.models.retrieve("resilient")
    assert model.id == "resilient"
    assert (model.model_extra or {}).get("anygate") == EXPECTED["resilient"]


def test_google_genai_parses_the_list_with_exactly_the_served_methods(
    genai_client: genai.Client,
) -> None:
    models = {m.name: m for m in genai_client.models.list()}
    assert set(models) == {f"models/{alias}" for alias in METHODS}
    for alias, methods in METHODS.items():
        model = models[f"models/{alias}"]
        assert model.supported_actions == methods, alias
        assert model.input_token_limit is None  # not known from the configuration
        assert model.output_token_limit is None


def test_google_genai_parses_one_model(genai_client: genai.Client) -> None:
    model = genai_client.models.get(model="gemini-embedding-001")
    assert model.name == "models/gemini-embedding-001"
    assert model.supported_actions == METHODS["gemini-embedding-001"]


def test_gemini_entries_carry_no_anygate_object(full_stack: Stack) -> None:
    """Google's shape stays Google's: the capabilities are in its own field there."""
    answer = httpx.get(f"{full_stack.url}/v1beta/models", headers={"x-goog-api-key": ACME})
    assert answer.status_code == 200
    for entry in answer.json()["models"]:
        assert "anygate" not in entry
        assert "inputTokenLimit" not in entry
