"""Read a request's body off the socket, refusing it (413) the moment it passes its limit.

Parsing and validating what was read is pure and shared with the control plane
(``core/body.py``)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from anygate.broker.errors import InvalidRequestError, PayloadTooLargeError


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
