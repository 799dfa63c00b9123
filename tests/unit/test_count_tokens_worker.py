"""A ``gemini:countTokens`` job inside a worker (docs/api.md#counttokens): the rate limits it
counts against, the Gemini adapter's call, and the OpenAI adapter's refusal; no Redis, no
network (fake broker and upstream client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
import pytest

from anygate.broker import COUNT_TOKENS, Broker, ClaimedJob
from anygate.broker.errors import UpstreamRejectedError, UpstreamTransientError
from anygate.broker.rate_window import Admission
from anygate.broker.routing import Step
from anygate.config import (
    Deployment,
    Priority,
    ProviderConfig,
    ProviderKind,
    QueueConfig,
    TenantConfig,
    TenantQuotas,
)
from anygate.workers.adapters import GeminiAdapter, OpenAIAdapter, UpstreamClient
from anygate.workers.adapters.targets import gemini_targets, openai_targets
from anygate.workers.rate_gate import RateGate

CONTENTS = [{"role": "user", "parts": [{"text": "a rather long prompt " * 50}]}]


def job(endpoint: str, body: dict[str, Any], *, client_key: str = "") -> ClaimedJob:
    return ClaimedJob(
        id="job_count",
        attempt=1,
        tenant="acme",
        endpoint=endpoint,
        model="fast",
        body=orjson.dumps(body),
        priority=Priority.INTERACTIVE,
        stream=False,
        client_key=client_key,
    )


class FakeRates:
    """Admits everything, and remembers what each window was charged."""

    def __init__(self) -> None:
        self.charged: dict[str, int] = {}

    async def wait(
        self, name: str, window_ms: int, per_window: int, entry: str, cost: int
    ) -> Admission:
        self.charged[name] = cost
        return Admission(True)

    async def settle(self, name: str, window_ms: int, entry: str, cost: int) -> None:
        self.charged[name] = cost


class FakeBroker:
    def __init__(self) -> None:
        self.rates = FakeRates()
        self.settle_rate = self.rates.settle


def gate_and_rates() -> tuple[RateGate, FakeRates]:
    broker = FakeBroker()
    tenant = TenantConfig(id="acme", quotas=TenantQuotas(rpm=600, tpm=100_000))
    gate = RateGate(cast("Broker", broker), QueueConfig(), [tenant])
    return gate, broker.rates


LIMITED = Step("fast", Deployment(provider="gemini", model="g", rpm=60, tpm=10_000))


class TestRateLimits:
    async def test_a_count_is_one_request_of_the_tenants_and_nothing_else(self) -> None:
        gate, rates = gate_and_rates()
        verdict = await gate.admit(
            job(COUNT_TOKENS, {"model": "fast", "contents": CONTENTS}), LIMITED
        )
        assert verdict.admitted
        assert rates.charged == {"rpm:t:acme": 1}

    async def test_settling_a_count_changes_no_window(self) -> None:
        gate, rates = gate_and_rates()
        counted = job(COUNT_TOKENS, {"model": "fast", "contents": CONTENTS})
        await gate.admit(counted, LIMITED)
        await gate.settle(counted, LIMITED, None)
        assert rates.charged == {"rpm:t:acme": 1}

    async def test_a_chat_job_still_counts_everywhere(self) -> None:
        """The comparison that makes the test above mean something."""
        gate, rates = gate_and_rates()
        body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        await gate.admit(job("/v1/chat/completions", body), LIMITED)
        assert set(rates.charged) == {"rpm:t:acme", "tpm:t:acme", "rpm:gemini:g", "tpm:gemini:g"}
        assert rates.charged["tpm:gemini:g"] > 1


class FakeUpstream:
    """Answers each POST with the next canned answer, and keeps what was sent."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, Mapping[str, Any], Mapping[str, str]]] = []

    async def post_json(
        self, url: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        self.sent.append((url, body, headers))
        return self.answers.pop(0)

    async def aclose(self) -> None:
        return None


async def never(_data: bytes) -> None:
    raise AssertionError("a count streams nothing")


@pytest.fixture(autouse=True)
def gemini_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's Gemini key, as the config refers to it."""
    monkeypatch.setenv("GK_SECRET", "gk-secret")


def gemini(upstream: FakeUpstream) -> GeminiAdapter:
    provider = ProviderConfig(
        kind=ProviderKind.GEMINI, base_url="https://gemini.example", api_key="env:GK_SECRET"
    )
    return GeminiAdapter(gemini_targets(provider), cast("UpstreamClient", upstream))


class TestGeminiAdapter:
    async def test_the_count_is_passed_on_as_gemini_sent_it_without_usage(self) -> None:
        answer = {
            "totalTokens": 31,
            "cachedContentTokenCount": 4,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}],
        }
        upstream = FakeUpstream(answer)
        body = {"model": "fast", "generateContentRequest": {"contents": CONTENTS}}
        outcome = await gemini(upstream).call(job(COUNT_TOKENS, body), "gemini-2.5-pro", never)
        assert outcome.result == answer
        assert outcome.usage is None
        [(url, sent, headers)] = upstream.sent
        assert url == "https://gemini.example/v1beta/models/gemini-2.5-pro:countTokens"
        assert sent == {
            "generateContentRequest": {"contents": CONTENTS, "model": "models/gemini-2.5-pro"}
        }
        assert headers["x-goog-api-key"] == "gk-secret"

    async def test_a_client_key_pays_for_the_count(self) -> None:
        upstream = FakeUpstream({"totalTokens": 1})
        body = {"model": "fast", "contents": CONTENTS}
        await gemini(upstream).call(job(COUNT_TOKENS, body), "g", never, api_key="gk-client-1")
        assert upstream.sent[0][2]["x-goog-api-key"] == "gk-client-1"

    @pytest.mark.parametrize("answer", [{"totalTokens": "31"}, {"totalTokens": -2}])
    async def test_an_answer_without_a_valid_count_is_transient(
        self, answer: dict[str, Any]
    ) -> None:
        upstream = FakeUpstream(answer)
        body = {"model": "fast", "contents": CONTENTS}
        with pytest.raises(UpstreamTransientError) as info:
            await gemini(upstream).call(job(COUNT_TOKENS, body), "g", never)
        assert info.value.code == "malformed_response"


async def test_the_openai_adapter_refuses_a_count_without_calling_anyone() -> None:
    upstream = FakeUpstream()
    provider = ProviderConfig(kind=ProviderKind.OPENAI, base_url="https://api.example/v1")
    adapter = OpenAIAdapter(openai_targets(provider), cast("UpstreamClient", upstream))
    with pytest.raises(UpstreamRejectedError) as info:
        await adapter.call(job(COUNT_TOKENS, {"model": "fast", "contents": []}), "gpt", never)
    assert info.value.code == "endpoint_not_served"
    assert upstream.sent == []
