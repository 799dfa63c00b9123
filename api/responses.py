"""Responses for the hot path.

``JSONResponse`` is Starlette's, rendered by orjson: the stdlib encoder was a visible slice of the
API's per-request CPU (py-spy, bench/). ``RelayResponse`` streams a synchronous call's events
without the task group and disconnect-listener task Starlette starts per stream for servers that
announce ASGI < 2.4 (uvicorn does): the call already watches for its caller's disconnect, and its
relay ends when the caller has gone.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette import responses
from starlette.types import Receive, Scope, Send


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class RelayResponse(responses.StreamingResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


SSE_KEEPALIVE = b": keep-alive\n"
"""An SSE comment line, sent between events: every SSE client (the openai SDK included) skips
it. No blank line after it: some clients (httpx-sse) dispatch an empty event on a blank line
once an event id was seen, against the SSE rules."""
