"""Starlette's JSON response, rendered by orjson: the stdlib encoder was a visible slice of the
API's per-request CPU (py-spy, bench/), and every answer on the hot path is JSON."""

from __future__ import annotations

from typing import Any

import orjson
from starlette import responses


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
