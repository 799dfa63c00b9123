"""One HTTP call to a provider's batch API, with a live call's error rules: a status other than
200 is the ``Upstream*Error`` its code calls for, a transport failure is transient and never
shows the request (its headers carry the key). Both batch clients call through here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from anygate.workers.adapters.http import error_for_status, json_object
from anygate.workers.adapters.upstream import transport_error


async def provider_call(
    http: httpx.AsyncClient, method: str, url: str, headers: Mapping[str, str], **kwargs: Any
) -> httpx.Response:
    try:
        response = await http.request(method, url, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(exc) from None
    if response.status_code != 200:
        raise error_for_status(response.status_code, response.content, response.headers)
    return response


def json_answer(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; anything else is transient, as a live call's garbled answer."""
    return json_object(response.content, what="body", code="malformed_response")
