"""What a model alias can do through anygate, from its configured route alone
(docs/api.md#model-capabilities).

Both model lists say it: OpenAI's ``GET /v1/models`` in an ``anygate`` object beside OpenAI's
own fields, Gemini's in ``supportedGenerationMethods``. Pure functions of the config, so that
the lists, the Gemini surface's ``:countTokens`` check and the planner agree on one answer.

A route counts tokens when its first deployment (as listed) is on a Gemini provider: Gemini has
a token-counting endpoint and OpenAI has none, and anygate never estimates a count itself (a
count is always the provider's). Such a call goes to the route's Gemini deployments only (the
planner drops the others), so whichever answers, the count is a Gemini model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anygate.broker.errors import InvalidRequestError
from anygate.broker.routing import ENDPOINT_KINDS
from anygate.config import ModelKind, ModelRoute, ProviderConfig, ProviderKind
from anygate.core.parking import takes_batches

CHAT_METHODS = ("generateContent", "streamGenerateContent")
EMBEDDING_METHODS = ("embedContent", "batchEmbedContents")
COUNT_TOKENS_METHOD = "countTokens"
ROUTE_ENDPOINTS = {kind: endpoint for endpoint, kind in ENDPOINT_KINDS.items() if kind}
"""The OpenAI endpoint of each kind of route (``routing.ENDPOINT_KINDS`` read the other way)."""


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    kind: ModelKind
    streaming: bool
    """Answers can stream (``stream: true``, ``:streamGenerateContent``): chat aliases."""
    providers: tuple[ProviderKind, ...]
    """The provider kind of each of the alias's own deployments, as listed."""
    fallbacks: tuple[str, ...]
    """The aliases its route falls back to, in order."""
    count_tokens: bool
    """Gemini's ``:countTokens`` is served for it (its first deployment is on Gemini)."""
    cache: bool
    """Its answers are kept in the response cache (``models.<alias>.cache``)."""
    batch_api: bool
    """Its patient jobs may go to a provider batch: its first deployment takes them
    (``batch_api``, docs/provider-batches.md)."""

    def to_api(self) -> dict[str, Any]:
        """The ``anygate`` object of an OpenAI model entry (docs/api.md#model-capabilities)."""
        return {
            "kind": self.kind.value,
            "streaming": self.streaming,
            "providers": [kind.value for kind in self.providers],
            "fallbacks": list(self.fallbacks),
            "count_tokens": self.count_tokens,
            "cache": self.cache,
            "batch_api": self.batch_api,
        }

    def gemini_methods(self) -> list[str]:
        """Gemini's ``supportedGenerationMethods``: exactly what anygate serves for the alias."""
        methods = list(EMBEDDING_METHODS if self.kind is ModelKind.EMBEDDING else CHAT_METHODS)
        if self.count_tokens:
            methods.append(COUNT_TOKENS_METHOD)
        return methods


def counts_tokens(route: ModelRoute, providers: Mapping[str, ProviderConfig]) -> bool:
    return providers[route.deployments[0].provider].kind is ProviderKind.GEMINI


def capabilities(route: ModelRoute, providers: Mapping[str, ProviderConfig]) -> ModelCapabilities:
    return ModelCapabilities(
        kind=route.kind,
        streaming=route.kind is ModelKind.CHAT,
        providers=tuple(providers[dep.provider].kind for dep in route.deployments),
        fallbacks=route.fallbacks,
        count_tokens=counts_tokens(route, providers),
        cache=route.cache,
        batch_api=takes_batches(
            providers[route.deployments[0].provider].kind,
            route.deployments[0],
            ROUTE_ENDPOINTS[route.kind],
        ),
    )


def token_counting_refused(
    alias: str, route: ModelRoute, providers: Mapping[str, ProviderConfig]
) -> InvalidRequestError | None:
    """Why ``:countTokens`` is refused for the alias (a 400 the client can act on), or None."""
    if counts_tokens(route, providers):
        return None
    kind = providers[route.deployments[0].provider].kind.value
    return InvalidRequestError(
        f"models/{alias} does not support countTokens: its provider ({kind}) has no "
        "token-counting endpoint, and anygate does not estimate token counts (a count is "
        "always the provider's); count tokens with a model alias served by Gemini",
        param="model",
        code="count_tokens_unsupported",
    )
