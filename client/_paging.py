"""Lists as the gateway pages them (docs/api.md#conventions): OpenAI's list shape, ``limit`` and
``after``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from anygate.client._calls import Call
from anygate.client._protocol import Emit, Op, request
from anygate.client._retry import RetryPolicy

T = TypeVar("T")

MAX_PAGE = 100


def paginate(
    path: str,
    policy: RetryPolicy,
    parse: Callable[[dict[str, Any]], T],
    *,
    params: Mapping[str, str] | None = None,
    page_size: int,
    limit: int | None,
    maximum: int = MAX_PAGE,
) -> Op[None]:
    """Every item of an OpenAI-shaped list, page after page (``after`` = the last id) while
    ``has_more``; at most ``limit`` items."""
    if not 1 <= page_size <= maximum:
        raise ValueError(f"page_size: must be between 1 and {maximum}")
    if limit is not None and limit < 0:
        raise ValueError("limit: must be 0 or more")
    given = 0
    after: str | None = None
    while limit is None or given < limit:
        size = page_size if limit is None else min(page_size, limit - given)
        query: dict[str, str | int | float] = {**(params or {}), "limit": size}
        if after is not None:
            query["after"] = after
        page = yield from request(Call("GET", path, params=query), policy)
        data = [item for item in page.get("data") or [] if isinstance(item, dict)]
        for item in data:
            yield Emit(parse(item))
        given += len(data)
        last = page.get("last_id") or (data[-1].get("id") if data else None)
        if not page.get("has_more") or not data or not isinstance(last, str):
            return
        after = last
