"""The pre-call token estimate (issue 5) and the rate-limit configuration rules."""

from __future__ import annotations

import pytest

from anygate.config import ConfigError, parse_config
from anygate.workers.rate_gate import guarded_window_ms
from anygate.workers.token_estimate import DEFAULT_COMPLETION_TOKENS, estimate_tokens

CHAT = "/v1/chat/completions"


def test_chat_counts_text_the_completion_budget_and_choices() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50, "n": 2}
    # 404 characters (the role counts too) → 101 tokens, + 4 per message, + 2 * 50 to answer
    assert estimate_tokens(CHAT, body) == 101 + 4 + 2 * 50


def test_without_a_budget_a_default_completion_is_assumed() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}]}]}
    assert estimate_tokens(CHAT, body) == 2 + 4 + DEFAULT_COMPLETION_TOKENS  # 'user' + 'abcd'


def test_embeddings_count_their_input() -> None:
    assert estimate_tokens("/v1/embeddings", {"input": ["a" * 8, "b" * 8]}) == 4


def test_the_counted_window_has_a_guard_for_dispatch_jitter() -> None:
    assert guarded_window_ms(1) == 1100
    assert guarded_window_ms(60) == 61_200


def _tree(**queue: object) -> dict[str, object]:
    return {
        "providers": {"p": {"kind": "openai"}},
        "models": {"m": {"deployments": [{"provider": "p", "model": "m", "rpm": 30}]}},
        "queue": queue,
    }


def test_the_window_must_divide_a_minute() -> None:
    with pytest.raises(ConfigError, match="rate_limit_window_s"):
        parse_config(_tree(rate_limit_window_s=7))


def test_a_limit_below_one_per_window_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"models\.m\.deployments\[0\]\.rpm"):
        parse_config(_tree(rate_limit_window_s=1))
    assert parse_config(_tree(rate_limit_window_s=2)).models["m"].deployments[0].rpm == 30
