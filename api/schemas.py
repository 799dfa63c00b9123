"""Request shapes the native job API accepts; strict, so a wrong type is an error, not a guess."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from anygate.config import Priority

MetadataKey = Annotated[str, Field(min_length=1, max_length=64)]
MetadataValue = Annotated[StrictStr, Field(max_length=512)]


class SubmitJob(BaseModel):
    """``POST /v1/jobs`` (SPEC §1.3)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    endpoint: Literal["/v1/chat/completions", "/v1/embeddings"]
    body: dict[str, Any]
    priority: Priority = Priority.STANDARD
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    webhook_url: Annotated[StrictStr, Field(pattern=r"^https?://", max_length=2048)] | None = None
    deadline: Annotated[float, Field(gt=0, strict=False)] | None = None
    """Unix time (seconds) after which a job that has not started ends ``expired``."""

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_from_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value in {p.value for p in Priority}:
            return Priority(value)
        return value


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatCompletionBody(BaseModel):
    """Only what the gateway itself relies on; every other field passes through to the provider."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: Annotated[StrictStr, Field(min_length=1)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: StrictBool | None = None
    stream_options: dict[str, Any] | None = None


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    model: Annotated[StrictStr, Field(min_length=1)]
    input: StrictStr | list[StrictStr] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None


BODY_MODELS: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionBody,
    "/v1/embeddings": EmbeddingsBody,
}
