"""The admin API as the operator commands call it (docs/api.md#admin-api): one synchronous
HTTP client keyed with an admin key, whose failures become one-line command errors.

The job and batch commands use ``anygate.client``; the admin API is not part of that client
(it is the operator's, not an application's), so the few calls the CLI makes to it live here.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import click
import httpx

from anygate.ops.cli_context import Connection

TIMEOUT_S = 30.0


class AdminAPIError(click.ClickException):
    """The gateway answered an error (its message, which never holds a key), or could not be
    reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def error_message(response: httpx.Response) -> str:
    """The error object's message when the answer has one (OpenAI's shape), else the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


class AdminClient:
    def __init__(self, connection: Connection, *, timeout: float = TIMEOUT_S) -> None:
        self.url = connection.url
        self._http = httpx.Client(
            base_url=connection.url,
            headers={"authorization": f"Bearer {connection.key}"},
            timeout=timeout,
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, params=params, json=json)
        except httpx.HTTPError as exc:
            raise AdminAPIError(f"cannot reach the gateway at {self.url}: {exc}") from None
        if response.status_code == 401:
            raise AdminAPIError(
                f"the gateway at {self.url} refused the admin key (401): check "
                "--admin-key / $ANYGATE_ADMIN_KEY",
                401,
            )
        if response.status_code == 403:
            raise AdminAPIError(f"the key has no admin scope (403): {error_message(response)}", 403)
        if response.is_error:
            raise AdminAPIError(error_message(response), response.status_code)
        body = response.json()
        if not isinstance(body, dict):
            raise AdminAPIError(f"{method} {path}: the gateway answered no JSON object")
        return body

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, json=json)

    def list_all(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a list answer, following ``after=`` while ``has_more``."""
        query = {"limit": "100", **(params or {})}
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, query)
            data = page.get("data") or []
            items.extend(data)
            if not page.get("has_more") or not data:
                return items
            query["after"] = str(data[-1]["id"])
