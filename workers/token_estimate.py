"""How many tokens a request will cost, before it is sent
(docs/queue-semantics.md#provider-rate-limits: tokens/min limits).

A heuristic on purpose (no tokenizer dependency): about four characters per token for text, the
requested completion budget (``max_completion_tokens``, ``max_tokens``) or a default, times the
number of choices. The limiter is settled to the provider's reported usage afterwards, so an
estimate only has to be close, and erring high is the safe side.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
DEFAULT_COMPLETION_TOKENS = 256
PER_MESSAGE_OVERHEAD = 4


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_chars(v) for v in value)
    if isinstance(value, dict):
        return sum(_text_chars(v) for k, v in value.items() if k not in {"image_url", "type"})
    return 0


def estimate_tokens(endpoint: str, body: dict[str, Any]) -> int:
    if endpoint.endswith("/embeddings"):
        return max(1, -(-_text_chars(body.get("input")) // CHARS_PER_TOKEN))
    messages = body.get("messages") or []
    prompt = -(-_text_chars(messages) // CHARS_PER_TOKEN) + PER_MESSAGE_OVERHEAD * len(messages)
    budget = body.get("max_completion_tokens") or body.get("max_tokens")
    completion = budget if isinstance(budget, int) and budget > 0 else DEFAULT_COMPLETION_TOKENS
    n = body.get("n")
    choices = n if isinstance(n, int) and n > 0 else 1
    return max(1, prompt + completion * choices)
