"""Knobs of the mock provider, shared by the CLI, the control endpoints and tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from anygate.ops.mock_provider.rate_limits import RateLimits

FaultKind = Literal["429", "500", "503", "hang", "drop", "malformed"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

# Fields a running mock may change through `POST /_mock/settings`. The key and the log size stay
# fixed for the life of the process: changing the key mid-test would only hide auth mistakes, and
# a resized log would silently drop history.
RUNTIME_FIELDS: frozenset[str] = frozenset(
    {
        "latency_ms",
        "chunk_count",
        "chunk_delay_ms",
        "prompt_tokens",
        "completion_tokens",
        "embedding_dim",
        "fault_rate",
        "fault",
        "rate_limit_rpm",
        "rate_limit_tpm",
        "rate_limit_window_s",
        "rate_limit_per_model",
        "batch_delay_s",
        "bearer_token",
    }
)


class MockSettings(BaseModel):
    """Immutable so a request sees one consistent snapshot even while settings are replaced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, description="delay before the first byte")
    chunk_count: int = Field(default=8, ge=1, le=10_000, description="content chunks per stream")
    chunk_delay_ms: float = Field(default=0.0, ge=0, description="delay between stream chunks")
    prompt_tokens: int | None = Field(
        default=None, ge=0, description="fixed prompt token count (unset: count words)"
    )
    completion_tokens: int | None = Field(
        default=None, ge=0, description="fixed completion token count (unset: count words)"
    )
    embedding_dim: int = Field(default=8, ge=1, le=65_536, description="embedding vector length")
    api_key: str | None = Field(
        default=None, min_length=1, description="required key (unset: any non-empty key)"
    )
    bearer_token: str | None = Field(
        default=None,
        min_length=1,
        description="the bearer token Azure OpenAI paths require (unset: any); changeable at "
        "run time, since such tokens rotate",
    )
    fault_rate: float = Field(
        default=0.0, ge=0, le=1, description="probability of injecting `fault` into a request"
    )
    fault: FaultKind = Field(default="500", description="fault injected at `fault_rate`")
    rate_limit_rpm: int | None = Field(
        default=None, ge=1, description="requests each key may make per window (unset: no limit)"
    )
    rate_limit_tpm: int | None = Field(
        default=None,
        ge=1,
        description="tokens (prompt + completion) each key may use per window (unset: no limit)",
    )
    rate_limit_window_s: float = Field(
        default=60.0,
        gt=0,
        description="the rate limits' sliding window: a minute, or less in tests",
    )
    rate_limit_per_model: bool = Field(
        default=False,
        description="give each model its own rate limits, as real providers do (default: per key)",
    )
    batch_delay_s: float = Field(
        default=1.0,
        ge=0,
        le=86_400,
        description="seconds a provider batch takes from creation to completed (before faults)",
    )
    request_log_size: int = Field(
        default=10_000, ge=0, description="requests kept for GET /_mock/requests"
    )

    def updated(self, changes: Mapping[str, Any]) -> MockSettings:
        """Validate a partial update as a whole, so a bad field leaves the old settings intact."""
        frozen = sorted(set(changes) - RUNTIME_FIELDS)
        if frozen:
            raise ValueError(f"not changeable at run time: {', '.join(frozen)}")
        return MockSettings.model_validate({**self.model_dump(), **changes})

    def public_view(self) -> dict[str, Any]:
        """The settings as the control API shows them: whether a key is required, never the key."""
        view = self.model_dump(exclude={"api_key", "bearer_token"})
        view["api_key_required"] = self.api_key is not None
        view["bearer_token_required"] = self.bearer_token is not None
        return view

    @property
    def rate_limits(self) -> RateLimits:
        return RateLimits(self.rate_limit_rpm, self.rate_limit_tpm, self.rate_limit_window_s)
