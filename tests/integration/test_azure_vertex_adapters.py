"""Azure OpenAI and Vertex AI through the workers' adapters, against the mock provider over real
HTTP: the URLs, ``api-version`` and credentials each host needs, as the mock's request log saw
them (docs/operations.md#azure-openai, docs/operations.md#vertex-ai). The official SDKs
(``openai.AzureOpenAI``, ``google-genai`` in Vertex mode) check that the mock speaks both
hosts' shapes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from anygate.broker import ClaimedJob
from anygate.broker.errors import UpstreamRejectedError
from anygate.config import AnygateConfig, Priority, parse_config
from anygate.config.secrets import SecretRef
from anygate.ops.mock_provider.vertex_http import JWT_BEARER
from anygate.workers.adapters import Account, ProviderAdapter, create_adapter
from tests.support.mock import MockControl

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
API_VERSION = "2024-10-21"
AZ_KEY, AZ_KEY_B = "az-key-0123456789", "az-key-b-0123456789"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def job(body: dict[str, Any], *, stream: bool = False, endpoint: str = CHAT) -> ClaimedJob:
    return ClaimedJob(
        id="job_testhosts",
        attempt=1,
        tenant="acme",
        endpoint=endpoint,
        model="alias",
        body=orjson.dumps(body),
        priority=Priority.INTERACTIVE,
        stream=stream,
    )


def chat(text: str = "Tell me about Paris") -> dict[str, Any]:
    return {"model": "alias", "messages": [{"role": "user", "content": text}]}


async def _ignore(_chunk: bytes) -> None:
    return None


def write_service_account(path: Path, token_uri: str) -> Path:
    """A service-account key as Google issues them, with a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "anygate-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "gateway@anygate-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    return path


def config(providers: dict[str, Any]) -> AnygateConfig:
    return parse_config({"providers": providers})


@pytest.fixture
async def adapters() -> AsyncIterator[list[ProviderAdapter]]:
    made: list[ProviderAdapter] = []
    yield made
    for adapter in made:
        await adapter.aclose()


def adapter_for(made: list[ProviderAdapter], cfg: AnygateConfig, pool: str) -> ProviderAdapter:
    adapter = create_adapter(cfg, pool, 4)
    made.append(adapter)
    return adapter


@pytest.fixture
def azure_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AZ_KEY", AZ_KEY)
    monkeypatch.setenv("TEST_AZ_KEY_B", AZ_KEY_B)


def azure(mock: MockControl, **auth: str) -> AnygateConfig:
    auth = auth or {"api_key": "env:TEST_AZ_KEY"}
    return config(
        {
            "az": {
                "kind": "azure_openai",
                "base_url": f"{mock.url}/res-a",
                "api_version": API_VERSION,
                **auth,
            }
        }
    )


@pytest.mark.usefixtures("azure_key")
class TestAzure:
    async def test_chat_streamed_and_not_and_embeddings(
        self, mock: MockControl, adapters: list[ProviderAdapter]
    ) -> None:
        adapter = adapter_for(adapters, azure(mock), "az")
        unary = await adapter.call(job(chat()), "my-gpt-4o", _ignore)
        assert unary.result["choices"][0]["message"]["content"]
        assert unary.usage is not None
        chunks: list[bytes] = []

        async def keep(chunk: bytes) -> None:
            chunks.append(chunk)

        streamed = await adapter.call(job(chat(), stream=True), "my-gpt-4o", keep)
        assert streamed.result["choices"][0]["message"]["content"]
        assert streamed.usage is not None
        # Azure's first chunk carries prompt_filter_results and no choices: relayed, harmless
        assert orjson.loads(chunks[0])["prompt_filter_results"]
        embedding = await adapter.call(
            job({"model": "alias", "input": ["a", "b"]}, endpoint=EMBEDDINGS), "my-emb", _ignore
        )
        assert len(embedding.result["data"]) == 2
        log = mock.requests()
        assert [r["path"] for r in log] == [
            "/res-a/openai/deployments/my-gpt-4o/chat/completions",
            "/res-a/openai/deployments/my-gpt-4o/chat/completions",
            "/res-a/openai/deployments/my-emb/embeddings",
        ]
        assert {r["query"] for r in log} == {f"api-version={API_VERSION}"}
        assert {r["auth"] for r in log} == {"api-key"}
        assert {r["key_fingerprint"] for r in log} == {fingerprint(AZ_KEY)}
        assert [r["stream"] for r in log] == [False, True, False]

    async def test_a_client_key_replaces_the_gateways_in_the_api_key_header(
        self, mock: MockControl, adapters: list[ProviderAdapter]
    ) -> None:
        adapter = adapter_for(adapters, azure(mock), "az")
        await adapter.call(job(chat()), "d", _ignore, api_key="client-own-key-1")
        (record,) = mock.requests()
        assert record["auth"] == "api-key"
        assert record["key_fingerprint"] == fingerprint("client-own-key-1")

    async def test_an_account_has_its_own_endpoint_and_key(
        self, mock: MockControl, adapters: list[ProviderAdapter]
    ) -> None:
        adapter = adapter_for(adapters, azure(mock), "az")
        b = Account("b", base_url=f"{mock.url}/res-b", api_key=SecretRef("env", "TEST_AZ_KEY_B"))
        await adapter.call(job(chat()), "d", _ignore, account=b)
        await adapter.call(job(chat()), "d", _ignore)
        first, second = mock.requests()
        assert first["path"].startswith("/res-b/openai/deployments/d/")
        assert first["key_fingerprint"] == fingerprint(AZ_KEY_B)
        assert second["path"].startswith("/res-a/openai/deployments/d/")
        assert second["key_fingerprint"] == fingerprint(AZ_KEY)

    async def test_an_entra_token_file_is_sent_as_bearer_and_followed_when_rotated(
        self, mock: MockControl, adapters: list[ProviderAdapter], tmp_path: Path
    ) -> None:
        token = tmp_path / "entra-token"
        token.write_text("entra-token-one\n")
        adapter = adapter_for(adapters, azure(mock, azure_ad_token=f"file:{token}"), "az")
        mock.settings(bearer_token="entra-token-one")
        await adapter.call(job(chat()), "d", _ignore)
        # the identity platform issues a new token; the old one stops working
        token.write_text("entra-token-two-rotated\n")
        mock.settings(bearer_token="entra-token-two-rotated")
        await adapter.call(job(chat(), stream=True), "d", _ignore)
        first, second = mock.requests()
        assert first["auth"] == second["auth"] == "bearer"
        assert first["key_fingerprint"] == fingerprint("entra-token-one")
        assert second["key_fingerprint"] == fingerprint("entra-token-two-rotated")
        assert [first["status"], second["status"]] == [200, 200]

    async def test_a_content_filter_refusal_is_not_retried(
        self, mock: MockControl, adapters: list[ProviderAdapter]
    ) -> None:
        adapter = adapter_for(adapters, azure(mock), "az")
        with pytest.raises(UpstreamRejectedError) as caught:
            await adapter.call(job(chat("say [content_filter] please")), "d", _ignore)
        assert caught.value.code == "content_filter"
        assert caught.value.upstream_status == 400

    async def test_the_mock_wants_api_version_and_credentials(self, mock: MockControl) -> None:
        url = f"{mock.url}/openai/deployments/d/chat/completions"
        async with httpx.AsyncClient() as http:
            missing = await http.post(url, json=chat(), headers={"api-key": "k"})
            bad = await http.post(url, params={"api-version": "latest"}, json=chat())
            anonymous = await http.post(url, params={"api-version": API_VERSION}, json=chat())
        assert (missing.status_code, missing.json()["error"]["message"]) == (
            404,
            "Resource not found",
        )
        assert bad.status_code == 400
        assert anonymous.status_code == 401

    def test_the_official_azure_sdk_talks_to_the_mock(self, mock: MockControl) -> None:
        from openai import AzureOpenAI  # noqa: PLC0415

        with AzureOpenAI(
            azure_endpoint=mock.url, api_key=AZ_KEY, api_version=API_VERSION, max_retries=0
        ) as sdk:
            answer = sdk.chat.completions.create(
                model="my-deployment", messages=[{"role": "user", "content": "hi"}]
            )
            stream = sdk.chat.completions.create(
                model="my-deployment", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert answer.choices[0].message.content
        assert text
        assert mock.requests()[0]["path"] == "/openai/deployments/my-deployment/chat/completions"


@pytest.fixture
def service_account(tmp_path: Path, mock: MockControl) -> Path:
    return write_service_account(tmp_path / "sa.json", f"{mock.url}/token")


def vertex(mock: MockControl, service_account: Path) -> AnygateConfig:
    return config(
        {
            "vx": {
                "kind": "vertex",
                "project": "anygate-test",
                "location": "us-central1",
                "credentials_file": str(service_account),
                "base_url": mock.url,
            }
        }
    )


class TestVertex:
    async def test_generate_and_stream_with_one_token_from_the_token_endpoint(
        self, mock: MockControl, adapters: list[ProviderAdapter], service_account: Path
    ) -> None:
        adapter = adapter_for(adapters, vertex(mock, service_account), "vx")
        unary = await adapter.call(job(chat()), "gemini-2.5-flash", _ignore)
        assert unary.result["choices"][0]["message"]["content"]
        chunks: list[bytes] = []

        async def keep(chunk: bytes) -> None:
            chunks.append(chunk)

        streamed = await adapter.call(job(chat(), stream=True), "gemini-2.5-flash", keep)
        assert chunks
        assert streamed.usage is not None
        await adapter.call(job(chat()), "gemini-2.5-flash", _ignore)
        log = mock.requests()
        tokens = [r for r in log if r["path"] == "/token"]
        calls = [r for r in log if r["path"] != "/token"]
        assert len(tokens) == 1, "the token is reused until it nears its expiry"
        assert tokens[0]["status"] == 200
        root = "/v1/projects/anygate-test/locations/us-central1/publishers/google/models"
        assert [r["path"] for r in calls] == [
            f"{root}/gemini-2.5-flash:generateContent",
            f"{root}/gemini-2.5-flash:streamGenerateContent",
            f"{root}/gemini-2.5-flash:generateContent",
        ]
        assert [r["query"] for r in calls] == ["", "alt=sse", ""]
        assert {r["auth"] for r in calls} == {"bearer"}
        assert {r["status"] for r in calls} == {200}
        assert len({r["key_fingerprint"] for r in calls}) == 1

    async def test_the_mock_refuses_a_token_it_did_not_issue(self, mock: MockControl) -> None:
        url = (
            f"{mock.url}/v1/projects/p/locations/us-central1/publishers/google/models/"
            "gemini-2.5-flash:generateContent"
        )
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        async with httpx.AsyncClient() as http:
            forged = await http.post(url, json=body, headers={"authorization": "Bearer ya29.x"})
            none = await http.post(url, json=body)
            grant = await http.post(f"{mock.url}/token", data={"grant_type": "password"})
            junk = await http.post(
                f"{mock.url}/token",
                data={"grant_type": JWT_BEARER, "assertion": "x"},
            )
        assert forged.status_code == none.status_code == 401
        assert forged.json()["error"]["status"] == "UNAUTHENTICATED"
        assert grant.json()["error"] == "unsupported_grant_type"
        assert junk.json()["error"] == "invalid_grant"

    def test_the_official_genai_sdk_in_vertex_mode_talks_to_the_mock(
        self, mock: MockControl, service_account: Path
    ) -> None:
        from google import genai  # noqa: PLC0415
        from google.oauth2 import service_account as sa  # noqa: PLC0415

        creds = sa.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            str(service_account), scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        client = genai.Client(
            vertexai=True,
            project="anygate-test",
            location="us-central1",
            credentials=creds,
            http_options={"base_url": mock.url},
        )
        try:
            answer = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        finally:
            client.close()
        assert answer.text
        paths = [r["path"] for r in mock.requests()]
        assert paths[0] == "/token"
        assert paths[1].startswith("/v1beta1/projects/anygate-test/locations/us-central1/")
