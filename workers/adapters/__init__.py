"""Provider adapters: one per provider kind, all speaking the same ``ProviderAdapter`` protocol."""

from anygate.config import AnygateConfig, ProviderKind
from anygate.workers.adapters.base import CallOutcome, ChunkSink, JobLostError, ProviderAdapter
from anygate.workers.adapters.gemini import GeminiAdapter
from anygate.workers.adapters.openai import OpenAIAdapter
from anygate.workers.adapters.upstream import UpstreamClient


class UnsupportedProviderError(Exception):
    """The pool's provider kind has no adapter in this version."""


def create_adapter(config: AnygateConfig, pool: str, concurrency: int) -> ProviderAdapter:
    provider = config.providers[pool]
    client = UpstreamClient.for_provider(provider, concurrency)
    if provider.kind in {ProviderKind.OPENAI, ProviderKind.OPENAI_COMPATIBLE}:
        return OpenAIAdapter(provider.resolved_base_url(), config.provider_key(pool), client)
    if provider.kind is ProviderKind.GEMINI:
        return GeminiAdapter(provider.resolved_base_url(), config.provider_key(pool), client)
    raise UnsupportedProviderError(
        f"providers.{pool}.kind: {provider.kind.value} has no adapter yet"
    )


__all__ = [
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
