"""Read and validate request bodies: size-limited, JSON, errors that name the offending field."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from anygate.broker.errors import InvalidRequestError, PayloadTooLargeError
from anygate.config import format_loc

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"request body exceeds the {limit}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequestError("the client went away before sending its body") from None
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidRequestError("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"request body is not valid JSON ({exc.msg} at position {exc.pos})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("request body must be a JSON object")
    return data


def validate(model: type[M], data: Any, *, prefix: str = "") -> M:
    """Validate ``data``; the first problem becomes a 400 whose ``param`` is the field's path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        loc = format_loc(tuple(err["loc"]))
        param = f"{prefix}.{loc}" if prefix and loc != "(root)" else (prefix or loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise InvalidRequestError(f"{param}: {msg}", param=param) from None
