"""Vertex AI's credentials: a service account's OAuth access token, through ``google-auth``.

google-auth signs the JWT-bearer grant with the account's key and exchanges it at the key's
``token_uri`` for an access token that lasts about an hour. Its ``refresh`` is synchronous (an
HTTP call through ``requests``), so it runs in a thread, one at a time: every call that finds
the token missing or about to expire waits for the same refresh instead of starting its own.
The token is reused until ``REFRESH_MARGIN_S`` before it expires.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from anygate.broker.errors import UpstreamTransientError
from anygate.config import ProviderConfig
from anygate.config.secrets import SecretResolutionError
from anygate.workers.adapters.auth import bearer

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN_S = 300.0
"""Refresh this long before the token expires, so no call goes out with a token that lapses in
flight (google-auth's own clock-skew margin is shorter)."""


class TokenSource(Protocol):
    """What this module needs of a google-auth credentials object."""

    token: str | None
    expiry: dt.datetime | None

    def refresh(self, request: Any) -> None: ...


def load_service_account(provider: ProviderConfig) -> TokenSource:
    """The provider's service account, from ``credentials_file`` or the ``credentials``
    secret; a problem names the setting, never the key."""
    from google.oauth2 import service_account  # noqa: PLC0415 - only vertex workers need it

    try:
        if provider.credentials_file is not None:
            where = "credentials_file"
            with open(provider.credentials_file, encoding="utf-8") as f:
                info = json.load(f)
        else:
            assert provider.credentials is not None
            where = "credentials"
            info = json.loads(provider.credentials.resolve().get_secret_value())
        creds: TokenSource = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[SCOPE]
        )
    except (OSError, SecretResolutionError, ValueError, KeyError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
        raise ServiceAccountError(f"{where}: not a usable service-account key ({reason})") from None
    return creds


class ServiceAccountError(ValueError):
    """The configured service-account key cannot be read or is not one."""


def _refresh_blocking(source: TokenSource) -> None:
    """google-auth's refresh over a session of its own, closed after (refreshes are hourly)."""
    import requests  # noqa: PLC0415
    from google.auth.transport.requests import Request  # noqa: PLC0415

    with requests.Session() as session:
        source.refresh(Request(session))


class ServiceAccountToken:
    """``Auth`` for Vertex AI: ``Authorization: Bearer <access token>``, refreshed in a thread
    shortly before it expires. A client's own key is taken as an access token of its own."""

    def __init__(
        self,
        source: TokenSource,
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None),
    ) -> None:
        self._source = source
        self._now = now  # google-auth keeps expiry as naive UTC
        self._lock = asyncio.Lock()
        self._headers: dict[str, str] = {}
        self._expiry: dt.datetime | None = None
        self.refreshes = 0

    def _fresh(self) -> bool:
        if not self._headers:
            return False
        if self._expiry is None:
            return True
        return (self._expiry - self._now()).total_seconds() > REFRESH_MARGIN_S

    async def headers(self) -> Mapping[str, str]:
        if self._fresh():
            return self._headers
        async with self._lock:  # one refresh in flight; the others wait for its token
            if not self._fresh():
                await self._refresh()
        return self._headers

    async def _refresh(self) -> None:
        from google.auth import exceptions  # noqa: PLC0415

        try:
            await asyncio.to_thread(_refresh_blocking, self._source)
        except exceptions.GoogleAuthError as exc:
            # google-auth's messages quote the token endpoint's answer, never the key
            raise UpstreamTransientError(
                f"could not get a Vertex AI access token ({type(exc).__name__})",
                code="credentials_unavailable",
            ) from None
        token = self._source.token
        if not token:
            raise UpstreamTransientError(
                "the token endpoint answered without an access token",
                code="credentials_unavailable",
            )
        self.refreshes += 1
        self._expiry = self._source.expiry
        self._headers = {"authorization": f"Bearer {token}"}

    def client_headers(self, api_key: str) -> Mapping[str, str]:
        return bearer(None).client_headers(api_key)
