"""The official ``google-genai`` SDK against the gateway (docs/api.md#gemini-compatible-surface,
issue 3): both API versions, Gemini-backed and OpenAI-backed models alike."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from tests.support.configs import TENANT_KEYS
from tests.support.mock import MockControl
from tests.support.stack import Stack

CHAT_MODELS = ["gemini-2.5-flash", "gpt-4o-mini"]
EMBEDDING_MODELS = ["gemini-embedding-001", "text-embedding-3-small"]


@pytest.fixture(params=["v1", "v1beta"])
def client(request: pytest.FixtureRequest, full_stack: Stack, mock: MockControl) -> genai.Client:
    return genai.Client(
        api_key=TENANT_KEYS["acme"],
        http_options=types.HttpOptions(base_url=full_stack.url, api_version=request.param),
    )


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_generate_content(client: genai.Client, model: str) -> None:
    response = client.models.generate_content(
        model=model,
        contents="Say hello to the gateway",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2),
    )
    assert response.text
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count
    assert response.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_stream_concatenates_to_the_whole_answer(client: genai.Client, model: str) -> None:
    whole = client.models.generate_content(model=model, contents="Stream to me")
    pieces = list(client.models.generate_content_stream(model=model, contents="Stream to me"))
    assert len(pieces) > 1
    assert "".join(p.text or "" for p in pieces) == whole.text
    assert pieces[-1].usage_metadata is not None


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_embed_content(client: genai.Client, model: str) -> None:
    response = client.models.embed_content(model=model, contents=["one", "two"])
    assert response.embeddings is not None
    assert len(response.embeddings) == 2
    assert response.embeddings[0].values


def test_models_list_shows_every_alias(client: genai.Client, full_stack: Stack) -> None:
    names = {m.name for m in client.models.list()}
    assert {f"models/{alias}" for alias in full_stack.tree["models"]} <= names


def test_unknown_model_raises_the_sdks_own_404(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-imaginary", contents="hi")
    assert info.value.code == 404


def test_bad_key_raises_the_sdks_own_401(full_stack: Stack) -> None:
    bad = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=full_stack.url))
    with pytest.raises(errors.ClientError) as info:
        bad.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert info.value.code == 401


def test_untranslatable_field_raises_the_sdks_own_400_naming_it(
    client: genai.Client, mock: MockControl
) -> None:
    """top_k has no OpenAI counterpart: refused before anything is queued, never dropped."""
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(
            model="gemini-2.5-flash", contents="hi", config=types.GenerateContentConfig(top_k=5)
        )
    assert info.value.code == 400
    assert "topK" in (info.value.message or "") or "top_k" in (info.value.message or "")
    assert mock.requests() == []
