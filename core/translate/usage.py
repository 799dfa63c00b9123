"""Token usage both ways: the provider's counts, regrouped, never re-estimated
(docs/api.md#gemini-compatible-surface).

Gemini counts thinking tokens apart from the answer (``thoughtsTokenCount``) and tool-use
prompt tokens apart from the prompt; OpenAI folds reasoning into ``completion_tokens`` and has
no tool-use bucket, so each is added to its OpenAI side. That keeps
``prompt + completion == total`` on both sides, which is what cost accounting relies on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _sub(source: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    value = source.get(key) if source else None
    return value if isinstance(value, Mapping) else None


def _count(source: Mapping[str, Any] | None, key: str) -> int:
    value = source.get(key) if source else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def gemini_usage_to_openai(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    total = _count(meta, "totalTokenCount") if meta and "totalTokenCount" in meta else None
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _count(meta, "cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def openai_usage_to_gemini(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    prompt = _count(usage, "prompt_tokens")
    completion = _count(usage, "completion_tokens")
    reasoning = _count(_sub(usage, "completion_tokens_details"), "reasoning_tokens")
    cached = _count(_sub(usage, "prompt_tokens_details"), "cached_tokens")
    total = _count(usage, "total_tokens") if usage and "total_tokens" in usage else None
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(0, completion - reasoning),
        "totalTokenCount": total if total is not None else prompt + completion,
    }
    if reasoning:
        meta["thoughtsTokenCount"] = reasoning
    if cached:
        meta["cachedContentTokenCount"] = cached
    return meta


def embedding_usage_to_openai(meta: Mapping[str, Any] | None) -> dict[str, int]:
    """Gemini's embed responses may carry no count at all; then the honest figure is 0."""
    prompt = _count(meta, "promptTokenCount")
    total = _count(meta, "totalTokenCount") if meta and "totalTokenCount" in meta else prompt
    return {"prompt_tokens": prompt, "total_tokens": total}


def embedding_usage_to_gemini(usage: Mapping[str, Any] | None) -> dict[str, int] | None:
    if not usage:
        return None
    prompt = _count(usage, "prompt_tokens")
    total = _count(usage, "total_tokens") if "total_tokens" in usage else prompt
    return {"promptTokenCount": prompt, "totalTokenCount": total}
