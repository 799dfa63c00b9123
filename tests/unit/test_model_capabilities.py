"""What an alias can do, from its configured route alone (docs/api.md#model-capabilities), and
how a ``:countTokens`` call is planned (docs/api.md#counttokens); pure, no Redis."""

from __future__ import annotations

from typing import Any, cast

import pytest
from redis.asyncio import Redis

from anygate.broker import COUNT_TOKENS
from anygate.broker.deployment_health import HealthView
from anygate.broker.errors import InvalidRequestError
from anygate.broker.routing import route_for
from anygate.config import AnygateConfig, ModelKind, ProviderKind, parse_config
from anygate.core.capabilities import (
    ModelCapabilities,
    capabilities,
    counts_tokens,
    token_counting_refused,
)
from anygate.core.planning import Planner

PROVIDERS = {
    "oa": {"kind": "openai"},
    "gm": {"kind": "gemini"},
    "gm-eu": {"kind": "gemini"},
    "local": {"kind": "openai_compatible"},
}


def config(**models: Any) -> AnygateConfig:
    return parse_config({"providers": PROVIDERS, "models": models})


def dep(provider: str, model: str = "m") -> dict[str, str]:
    return {"provider": provider, "model": model}


def caps(cfg: AnygateConfig, alias: str) -> ModelCapabilities:
    return capabilities(cfg.models[alias], cfg.providers)


class TestCapabilities:
    def test_a_chat_alias_on_gemini_with_fallbacks(self) -> None:
        cfg = config(
            main={
                "deployments": [dep("gm", "g"), dep("oa", "o"), dep("local", "l")],
                "fallbacks": ["spare", "last"],
                "cache": True,
            },
            spare={"deployments": [dep("oa")]},
            last={"deployments": [dep("oa")]},
        )
        found = caps(cfg, "main")
        assert found == ModelCapabilities(
            kind=ModelKind.CHAT,
            streaming=True,
            providers=(ProviderKind.GEMINI, ProviderKind.OPENAI, ProviderKind.OPENAI_COMPATIBLE),
            fallbacks=("spare", "last"),
            count_tokens=True,
            cache=True,
            batch_api=False,
        )
        assert found.to_api() == {
            "kind": "chat",
            "streaming": True,
            "providers": ["gemini", "openai", "openai_compatible"],
            "fallbacks": ["spare", "last"],
            "count_tokens": True,
            "cache": True,
            "batch_api": False,
        }
        assert found.gemini_methods() == [
            "generateContent",
            "streamGenerateContent",
            "countTokens",
        ]

    def test_the_first_deployment_decides_whether_tokens_are_counted(self) -> None:
        cfg = config(mixed={"deployments": [dep("oa"), dep("gm")]})
        assert not caps(cfg, "mixed").count_tokens
        assert caps(cfg, "mixed").gemini_methods() == ["generateContent", "streamGenerateContent"]

    def test_a_gemini_fallback_does_not_make_an_openai_alias_count(self) -> None:
        cfg = config(
            primary={"deployments": [dep("oa")], "fallbacks": ["backup"]},
            backup={"deployments": [dep("gm")]},
        )
        assert not counts_tokens(cfg.models["primary"], cfg.providers)
        assert counts_tokens(cfg.models["backup"], cfg.providers)

    def test_an_openai_compatible_provider_cannot_count(self) -> None:
        cfg = config(local={"deployments": [dep("local")]})
        assert not caps(cfg, "local").count_tokens

    @pytest.mark.parametrize(
        ("provider", "methods"),
        [
            ("gm", ["embedContent", "batchEmbedContents", "countTokens"]),
            ("oa", ["embedContent", "batchEmbedContents"]),
        ],
    )
    def test_an_embedding_alias(self, provider: str, methods: list[str]) -> None:
        cfg = config(emb={"kind": "embedding", "deployments": [dep(provider)]})
        found = caps(cfg, "emb")
        assert found.kind is ModelKind.EMBEDDING
        assert not found.streaming
        assert found.gemini_methods() == methods
        assert found.to_api()["kind"] == "embedding"
        assert found.to_api()["streaming"] is False

    def test_a_refusal_says_why_and_names_the_provider_kind(self) -> None:
        cfg = config(gpt={"deployments": [dep("oa")]}, gem={"deployments": [dep("gm")]})
        assert token_counting_refused("gem", cfg.models["gem"], cfg.providers) is None
        refused = token_counting_refused("gpt", cfg.models["gpt"], cfg.providers)
        assert isinstance(refused, InvalidRequestError)
        assert refused.status == 400
        assert refused.code == "count_tokens_unsupported"
        assert refused.message.startswith("models/gpt does not support countTokens")
        assert "its provider (openai) has no token-counting endpoint" in refused.message
        assert "does not estimate token counts" in refused.message


def planner(cfg: AnygateConfig) -> Planner:
    # No route uses a live strategy: the planner never reads Redis.
    return Planner(cfg, cast("Redis", None), HealthView())


class TestCountTokensPlan:
    async def test_only_the_routes_gemini_steps_in_its_order(self) -> None:
        cfg = config(
            main={
                "deployments": [dep("gm", "g1"), dep("oa", "o"), dep("gm-eu", "g2")],
                "fallbacks": ["openai-spare", "gemini-spare"],
            },
            **{
                "openai-spare": {"deployments": [dep("oa", "o2")]},
                "gemini-spare": {"deployments": [dep("local", "l"), dep("gm", "g3")]},
            },
        )
        steps = await planner(cfg).plan(COUNT_TOKENS, {"model": "main"})
        assert [(s.alias, s.provider, s.deployment.model) for s in steps] == [
            ("main", "gm", "g1"),
            ("main", "gm-eu", "g2"),
            ("gemini-spare", "gm", "g3"),
        ]

    async def test_an_alias_whose_first_deployment_is_not_gemini_is_refused(self) -> None:
        cfg = config(mixed={"deployments": [dep("oa"), dep("gm")]})
        with pytest.raises(InvalidRequestError) as info:
            await planner(cfg).plan(COUNT_TOKENS, {"model": "mixed"})
        assert info.value.code == "count_tokens_unsupported"

    async def test_an_embedding_alias_may_count(self) -> None:
        cfg = config(emb={"kind": "embedding", "deployments": [dep("gm", "e")]})
        steps = await planner(cfg).plan(COUNT_TOKENS, {"model": "emb"})
        assert [s.deployment.model for s in steps] == ["e"]

    def test_route_for_takes_either_kind_for_counting_only(self) -> None:
        cfg = config(
            emb={"kind": "embedding", "deployments": [dep("gm")]},
            chat={"deployments": [dep("gm")]},
        )
        assert route_for(cfg, COUNT_TOKENS, "emb").kind is ModelKind.EMBEDDING
        assert route_for(cfg, COUNT_TOKENS, "chat").kind is ModelKind.CHAT
        with pytest.raises(InvalidRequestError):
            route_for(cfg, "/v1/chat/completions", "emb")

    async def test_chat_plans_keep_every_provider(self) -> None:
        cfg = config(main={"deployments": [dep("gm", "g"), dep("oa", "o")]})
        body = {"model": "main", "messages": [{"role": "user", "content": "hi"}]}
        steps = await planner(cfg).plan("/v1/chat/completions", body)
        assert [s.provider for s in steps] == ["gm", "oa"]
