"""Provider-neutral pieces of a mock reply: text, token counts, chunking, tool calls, embeddings.

Everything here is deterministic in its inputs, so a streamed reply can be checked against the
non-streamed reply to the same request, and a vector against the text it was derived from.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from anygate.ops.mock_provider.schema_example import example_for_schema

ECHO_CHARS = 64
_PAD_WORD = " mock"
FinishKind = Literal["stop", "length", "tool"]


class BadRequestError(Exception):
    """A request the real provider would reject with 400; each wire renders it in its own shape."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


@dataclass(frozen=True, slots=True)
class Completion:
    """One generated candidate; `text` is empty when the candidate is a tool call."""

    text: str
    tool_call: ToolCall | None
    finish: FinishKind
    tokens: int


@dataclass(frozen=True, slots=True)
class Shaping:
    """The request's limits on generated text, in the provider-neutral form both wires map to."""

    chunk_count: int
    max_words: int | None = None
    stops: tuple[str, ...] = ()


def count_words(text: str) -> int:
    """Whitespace words stand in for tokens: stable across runs and cheap on the hot path."""
    return len(text.split())


def echo(text: str) -> str:
    """Collapse and cap user text so replies stay short whatever the prompt size."""
    flat = " ".join(text.split())
    return flat if len(flat) <= ECHO_CHARS else flat[: ECHO_CHARS - 3] + "..."


def split_chunks(text: str, count: int) -> list[str]:
    """Cut `text` into `count` near-equal non-empty pieces (fewer only if it is shorter)."""
    pieces = min(count, len(text))
    if pieces == 0:
        return []
    size, extra = divmod(len(text), pieces)
    out: list[str] = []
    start = 0
    for index in range(pieces):
        end = start + size + (1 if index < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def _padded(text: str, chunk_count: int) -> str:
    """Pad with whole words so a stream can always be cut into `chunk_count` pieces."""
    missing = chunk_count - len(text)
    if missing <= 0:
        return text
    return text + _PAD_WORD * -(-missing // len(_PAD_WORD))


def reply_text(prompt: str, *, variant: int, chunk_count: int) -> str:
    """Echo the prompt; later choices say which they are, so `n > 1` answers differ."""
    label = "Mock reply" if variant == 0 else f"Mock reply {variant + 1}"
    return _padded(f"{label} to: {echo(prompt)}", chunk_count)


def tool_result_text(result: str, *, chunk_count: int) -> str:
    """Mention the tool's output so tests can see the result travelled back to the model."""
    return _padded(f"Mock reply using the tool result: {echo(result)}", chunk_count)


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = len(text)
    for stop in stops:
        if stop:
            found = text.find(stop)
            if found != -1:
                cut = min(cut, found)
    return text[:cut]


def _cut_words(text: str, max_words: int) -> tuple[str, bool]:
    words = 0
    in_word = False
    for index, char in enumerate(text):
        if char.isspace():
            in_word = False
        elif not in_word:
            if words == max_words:
                return text[:index].rstrip(), True
            words += 1
            in_word = True
    return text, False


def shape_text(text: str, shaping: Shaping) -> Completion:
    """Apply stop sequences, then the token cap, the order in which a real model would hit them."""
    text = _cut_at_stop(text, shaping.stops)
    truncated = False
    if shaping.max_words is not None:
        text, truncated = _cut_words(text, shaping.max_words)
    finish: FinishKind = "length" if truncated else "stop"
    return Completion(text=text, tool_call=None, finish=finish, tokens=count_words(text))


def json_reply(schema: Any, fallback_text: str) -> str:
    """A JSON document satisfying `schema`, or a one-field object when only JSON was asked for."""
    value = example_for_schema(schema) if isinstance(schema, dict) else {"reply": fallback_text}
    return orjson.dumps(value).decode()


def tool_completion(name: str, parameters: Any) -> Completion:
    arguments = example_for_schema(parameters) if isinstance(parameters, dict) else {}
    if not isinstance(arguments, dict):
        arguments = {}
    call = ToolCall(name=name, arguments=arguments)
    return Completion(
        text="", tool_call=call, finish="tool", tokens=max(1, count_words(call.arguments_json))
    )


def embedding_vector(text: str, dim: int) -> list[float]:
    """A unit vector seeded by the text, rounded to float32 so float and base64 outputs agree."""
    seed = text.encode()
    raw = bytearray()
    block = 0
    while len(raw) < dim * 4:
        raw += hashlib.blake2b(block.to_bytes(8, "little") + seed, digest_size=64).digest()
        block += 1
    ints = struct.unpack(f"<{dim}I", bytes(raw[: dim * 4]))
    values = [value / 2_147_483_648.0 - 1.0 for value in ints]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    packed = struct.pack(f"<{dim}f", *(value / norm for value in values))
    return list(struct.unpack(f"<{dim}f", packed))


def float32_base64(values: Sequence[float]) -> str:
    """Little-endian float32 bytes: what the OpenAI SDK decodes for `encoding_format=base64`."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def numbered_json_lines(raw: bytes) -> Iterator[tuple[int, Any]]:
    """Each non-blank line of a JSONL upload with its number (from 1), parsed, or None when it
    is not JSON: a batch input's validation names the line."""
    for number, text in enumerate(raw.decode(errors="replace").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            yield number, orjson.loads(text)
        except orjson.JSONDecodeError:
            yield number, None
