"""Lists, the way OpenAI pages them: a ``limit`` query parameter in, its list shape out.

Every list the API answers (jobs, files, batches, the admin lists) reads its page size and
writes its answer through these two, so they bound and shape pages alike.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from anygate.api.responses import JSONResponse
from anygate.broker.errors import InvalidRequestError


def page_limit(request: Request, *, default: int = 20, maximum: int = 100) -> int:
    raw = request.query_params.get("limit", str(default))
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequestError("limit: expected an integer", param="limit") from None
    if not 1 <= limit <= maximum:
        raise InvalidRequestError(f"limit: must be between 1 and {maximum}", param="limit")
    return limit


def list_page(data: list[dict[str, Any]], has_more: bool = False, **extra: Any) -> JSONResponse:
    """OpenAI's list shape; the next page's cursor is ``last_id``."""
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": data[0].get("id") if data else None,
            "last_id": data[-1].get("id") if data else None,
            "has_more": has_more,
            **extra,
        }
    )
