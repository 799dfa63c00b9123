"""Provider adapters: one per provider kind, all speaking the same ``ProviderAdapter`` protocol."""

from anygate.config import AnygateConfig, ProviderKind
from anygate.workers.adapters.base import (
    Account,
    CallOutcome,
    ChunkSink,
    JobLostError,
    ProviderAdapter,
)
from anygate.workers.adapters.gemini import GeminiAdapter
from anygate.workers.adapters.google_token import ServiceAccountError
from anygate.workers.adapters.openai import OpenAIAdapter
from anygate.workers.adapters.targets import gemini_targets, openai_targets
from anygate.workers.adapters.upstream import UpstreamClient


class UnsupportedProviderError(Exception):
    """The pool's provider kind has no adapter in this version."""


def create_adapter(config: AnygateConfig, pool: str, concurrency: int) -> ProviderAdapter:
    provider = config.providers[pool]
    client = UpstreamClient.for_provider(provider, concurrency)
    try:
        if provider.kind.speaks_gemini:
            return GeminiAdapter(gemini_targets(provider), client)
        if provider.kind in {
            ProviderKind.OPENAI,
            ProviderKind.OPENAI_COMPATIBLE,
            ProviderKind.AZURE_OPENAI,
        }:
            return OpenAIAdapter(openai_targets(provider), client)
    except ServiceAccountError as exc:
        raise ServiceAccountError(f"providers.{pool}.{exc}") from None
    raise UnsupportedProviderError(
        f"providers.{pool}.kind: {provider.kind.value} has no adapter yet"
    )


__all__ = [
    "Account",
    "CallOutcome",
    "ChunkSink",
    "GeminiAdapter",
    "JobLostError",
    "OpenAIAdapter",
    "ProviderAdapter",
    "UnsupportedProviderError",
    "UpstreamClient",
    "create_adapter",
]
