"""Request shapes the native job API accepts; strict, so a wrong type is an error, not a guess."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from anygate.config import Priority

MetadataKey = Annotated[str, Field(min_length=1, max_length=64)]
MetadataValue = Annotated[StrictStr, Field(max_length=512)]


class SubmitJob(BaseModel):
    """``POST /v1/jobs`` (docs/api.md#native-job-api)."""

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


# --- the providers' own bounds -------------------------------------------------------------
# Every bound below is one OpenAI documents for the field (its OpenAPI spec, ``openapi.yaml``
# in github.com/openai/openai-openapi: CreateChatCompletionRequest, ModelResponseProperties,
# StopConfiguration, CreateEmbeddingRequest), so a request refused here is one the provider
# would refuse too, only later: a queued job would fail into the dead letters, and an
# unbounded count (``n``, embedding inputs) could make one job's result giant. A field the
# spec leaves unbounded is bounded only to fit 64 bits. The body is forwarded as sent: these
# models check it, they never rewrite it.

INT64_MAX = 2**63 - 1
MAX_CHOICES = 128
MAX_TOP_LOGPROBS = 20
MAX_STOP = 4
MAX_FUNCTIONS = 128
MAX_EMBEDDING_INPUTS = 2048
MAX_DIMENSIONS = 65_536
"""OpenAI documents only ``dimensions >= 1``: a model refuses more than its own width. The
widest embedding OpenAI ever served had 12,288 dimensions (3,072 today, and Gemini's), so this
refuses no real request, only values that would make a provider (or the mock) build vectors
of absurd size."""

TokenCount = Annotated[int, Field(ge=1, le=INT64_MAX)]
Penalty = Annotated[float, Field(ge=-2, le=2)]
StopText = Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_STOP)]


class ChatCompletionBody(BaseModel):
    """What the gateway relies on, and OpenAI's documented bounds; every other field passes
    through to the provider."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: Annotated[StrictStr, Field(min_length=1)]
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    stream: StrictBool | None = None
    stream_options: dict[str, Any] | None = None
    n: Annotated[int, Field(ge=1, le=MAX_CHOICES)] | None = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    stop: Any = None
    seed: Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)] | None = None
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = None
    functions: Annotated[list[Any], Field(min_length=1, max_length=MAX_FUNCTIONS)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        """A string or 1 to 4 strings. Checked by hand: a union would name its members in the
        error's field path (``stop.list[str]``)."""
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError("expected a string or an array of strings")
        if not 1 <= len(value) <= MAX_STOP:
            raise ValueError(f"expected 1 to {MAX_STOP} stop sequences, got {len(value)}")
        return value


def _token_problem(tokens: list[Any]) -> str | None:
    if all(type(t) is int and 0 <= t <= INT64_MAX for t in tokens):
        return None
    return f"token ids are integers from 0 to {INT64_MAX}"


def input_problem(value: Any) -> str | None:
    """Why an embeddings ``input`` is not one OpenAI takes, or None: one non-empty string or
    token array, or 1 to 2048 of either, never mixed. An array of integers is one input (a
    token array) however long: the body size bounds it, and the model's context its tokens.
    Checked by hand: a union would name its members in the error's field path
    (``input.list[str]``)."""
    if isinstance(value, str):
        return None if value else "must not be an empty string"
    if not isinstance(value, list) or not value:
        return "expected a non-empty string or a non-empty array"
    if all(type(item) is int for item in value):
        return _token_problem(value)
    if len(value) > MAX_EMBEDDING_INPUTS:
        return f"at most {MAX_EMBEDDING_INPUTS} inputs, got {len(value)}"
    kind = str if isinstance(value[0], str) else list
    for index, item in enumerate(value):
        if type(item) is not kind:
            return f"item {index}: expected all strings or all token arrays (arrays of integers)"
        if not item:
            return f"item {index}: must not be empty"
        if isinstance(item, list) and (problem := _token_problem(item)):
            return f"item {index}: {problem}"
    return None


class EmbeddingsBody(BaseModel):
    """What the gateway relies on, and OpenAI's documented bounds (see above)."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: Annotated[StrictStr, Field(min_length=1)]
    input: Any
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1, le=MAX_DIMENSIONS)] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        problem = input_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


BODY_MODELS: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionBody,
    "/v1/embeddings": EmbeddingsBody,
}
"""The one schema per endpoint, for every surface: ``/v1/jobs`` bodies, the compatible
endpoints, the Gemini surface's translated requests and batch lines."""
