"""How each provider words a rate-limit refusal, and OpenAI's `x-ratelimit-*` headers.

The texts copy the real ones (OpenAI's "Rate limit reached for ... (RPM): Limit, Used,
Requested" and "Request too large", Google's RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo)
so clients that parse them are tested against what they will meet.
"""

from __future__ import annotations

import math
from typing import Any

from anygate.ops.mock_provider.exchange import Headers
from anygate.ops.mock_provider.gemini_wire import error_body as gemini_error_body
from anygate.ops.mock_provider.openai_wire import error_body as openai_error_body
from anygate.ops.mock_provider.rate_limits import Decision

ORGANIZATION = "org-mock"
_OPENAI_HELP = "Visit https://platform.openai.com/account/rate-limits to learn more."
_GEMINI_HELP = "https://ai.google.dev/gemini-api/docs/rate-limits"


def _millis(seconds: float) -> int:
    """Whole milliseconds, rounded up: waiting the advertised time must be enough."""
    return max(0, math.ceil(round(seconds * 1000, 6)))


def seconds_text(seconds: float) -> str:
    """Seconds to the millisecond without trailing zeros: `1.2`, `0.35`, `2`."""
    return f"{_millis(seconds) / 1000:.3f}".rstrip("0").rstrip(".")


def openai_duration(seconds: float) -> str:
    """OpenAI's reset and retry durations: `17ms`, `1.2s`, `6m0s`."""
    millis = _millis(seconds)
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    text = seconds_text(rest / 1000) + "s"
    return f"{minutes}m{text}" if minutes else text


def openai_headers(decision: Decision) -> Headers:
    """What OpenAI reports on every answer while limits apply, for each limited dimension."""
    headers: Headers = []
    limits = decision.limits
    if limits.rpm is not None:
        headers += [
            (b"x-ratelimit-limit-requests", str(limits.rpm).encode()),
            (b"x-ratelimit-remaining-requests", str(decision.remaining_requests).encode()),
            (b"x-ratelimit-reset-requests", openai_duration(decision.reset_requests_s).encode()),
        ]
    if limits.tpm is not None:
        headers += [
            (b"x-ratelimit-limit-tokens", str(limits.tpm).encode()),
            (b"x-ratelimit-remaining-tokens", str(decision.remaining_tokens).encode()),
            (b"x-ratelimit-reset-tokens", openai_duration(decision.reset_tokens_s).encode()),
        ]
    return headers


def openai_refusal(decision: Decision, model: str) -> tuple[dict[str, Any], Headers]:
    """The 429 body and headers; a request too large for the window gets no Retry-After."""
    limits = decision.limits
    where = f"{model} in organization {ORGANIZATION}"
    headers = openai_headers(decision)
    if decision.refused_by == "too_large":
        message = (
            f"Request too large for {where} on tokens per min (TPM): Limit {limits.tpm},"
            f" Requested {decision.requested_tokens}. The input or output tokens must be reduced"
            f" in order to run successfully. {_OPENAI_HELP}"
        )
        kind = "tokens"
    else:
        if decision.refused_by == "requests":
            kind, measure = "requests", f"requests per min (RPM): Limit {limits.rpm}"
            used, requested = decision.used_requests, 1
        else:
            kind, measure = "tokens", f"tokens per min (TPM): Limit {limits.tpm}"
            used, requested = decision.used_tokens, decision.requested_tokens
        message = (
            f"Rate limit reached for {where} on {measure}, Used {used}, Requested {requested}."
            f" Please try again in {openai_duration(decision.retry_after_s)}. {_OPENAI_HELP}"
        )
        headers.insert(0, (b"retry-after", seconds_text(decision.retry_after_s).encode()))
    body = openai_error_body(message, kind=kind, code="rate_limit_exceeded")
    return body, headers


def gemini_refusal(decision: Decision, model: str) -> dict[str, Any]:
    """RESOURCE_EXHAUSTED naming the quota, with RetryInfo unless no wait can help."""
    limits = decision.limits
    if decision.refused_by == "requests":
        metric = "generativelanguage.googleapis.com/generate_content_requests"
        quota_id, limit = "GenerateRequestsPerMinutePerProjectPerModel", limits.rpm
    else:
        metric = "generativelanguage.googleapis.com/generate_content_token_count"
        quota_id, limit = "GenerateContentTokensPerModelPerMinute", limits.tpm
    if decision.refused_by == "too_large":
        advice = f"This request alone needs {decision.requested_tokens} tokens."
    else:
        advice = f"Please retry in {seconds_text(decision.retry_after_s)}s."
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more"
        f" information on this error, head to: {_GEMINI_HELP}.\n"
        f"* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}\n{advice}"
    )
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": str(limit),
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Learn more about Gemini API quotas", "url": _GEMINI_HELP}],
        },
    ]
    if decision.refused_by != "too_large":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{seconds_text(decision.retry_after_s)}s",
            }
        )
    return gemini_error_body(429, message, details)
