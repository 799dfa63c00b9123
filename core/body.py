"""Parse and validate request bodies: JSON objects of bounded depth, errors that name the
offending field.

Pure: the API checks each request body here, and the control plane each line of a batch, so a
line is refused exactly as the same request would be (reading the bytes off the socket, with
its size limit, is the API's: ``api/request_body.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from anygate.broker.errors import InvalidRequestError
from anygate.config import ServerConfig, format_loc

M = TypeVar("M", bound=BaseModel)

DEFAULT_MAX_DEPTH: int = ServerConfig.model_fields["max_json_depth"].default
_WIDE = 32
"""Containers longer than this are first screened for nested containers at C speed."""


def parse_json_object(raw: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """Parse a request body that must be a JSON object nested at most ``max_depth`` levels.

    Every request passes through here, so the depth check must cost next to nothing: it runs
    once over the parsed object (not over the bytes: measured on 2 KB chat bodies and on 1 MB
    bodies, it costs less than ``orjson.loads`` itself and 2-10x less than a byte scan that
    must skip strings)."""
    if not raw.strip():
        raise InvalidRequestError("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:  # orjson's own 1024-level limit: the same problem, named ours
            raise _too_deep(max_depth) from None
        raise InvalidRequestError(
            f"request body is not valid JSON ({exc.msg} at position {exc.pos})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("request body must be a JSON object")
    if nested_deeper_than(data, max_depth):
        raise _too_deep(max_depth)
    return data


def _too_deep(max_depth: int) -> InvalidRequestError:
    return InvalidRequestError(
        f"request body is nested too deeply: at most {max_depth} levels of objects and arrays "
        "are accepted",
        code="json_too_deep",
    )


def nested_deeper_than(data: Any, limit: int) -> bool:
    """Whether parsed JSON nests objects/arrays more than ``limit`` levels (``{}`` is 1).

    Breadth-first, one level at a time, so it never recurses and stops at level ``limit + 1``.
    orjson only builds exact ``dict``/``list``, so ``type() is`` is enough. A wide container
    (an embeddings input of token ids, many strings) is skipped whole when ``map(type)`` finds
    no container in it: that runs in C instead of a Python loop over every element."""
    level: list[Any] = [data] if type(data) is dict or type(data) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            if len(children) > _WIDE:
                kinds = set(map(type, children))
                if dict not in kinds and list not in kinds:
                    continue
            for child in children:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
    return False


def validate(
    model: type[M], data: Any, *, prefix: str = "", names: Mapping[str, str] | None = None
) -> M:
    """Validate ``data``; the first problem becomes a 400 whose ``param`` is the field's path.

    ``names`` renames top-level fields, for a body translated from a request the client
    wrote otherwise (the Gemini surface): the error names the field the client sent."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        path = tuple(err["loc"])
        if names and path and isinstance(path[0], str) and path[0] in names:
            path = (names[path[0]], *path[1:])
        loc = format_loc(path)
        param = f"{prefix}.{loc}" if prefix and loc != "(root)" else (prefix or loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise InvalidRequestError(f"{param}: {msg}", param=param) from None
