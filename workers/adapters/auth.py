"""How an upstream call proves who it is: the headers a provider's credentials become.

Each provider kind sends its key its own way (``Authorization: Bearer`` for OpenAI,
``api-key`` for Azure OpenAI, ``x-goog-api-key`` for Gemini) or holds a token that changes
while the worker runs (an Entra ID token file, a service account's OAuth token); adapters see
only ``Auth``. A client's own key (BYOK) replaces the gateway's credentials entirely, in the
header that kind takes keys in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import SecretStr

from anygate.broker.errors import UpstreamTransientError
from anygate.config.secrets import FileStamp, SecretRef, SecretResolutionError, file_stamp


async def json_headers(auth: Auth, client_key: str | None) -> dict[str, str]:
    """A JSON call's headers: the gateway's credentials, or the client's key when it sent one."""
    found = await auth.headers() if client_key is None else auth.client_headers(client_key)
    return {"content-type": "application/json", **found}


class Auth(Protocol):
    async def headers(self) -> Mapping[str, str]:
        """The gateway's credentials, as headers (none when it has no key)."""
        ...

    def client_headers(self, api_key: str) -> Mapping[str, str]:
        """A client's own key (BYOK), as headers, instead of the gateway's."""
        ...


@dataclass(frozen=True, slots=True)
class KeyHeader:
    """A static key in one header: ``name: {prefix}{key}``."""

    name: str
    key: SecretStr | None
    prefix: str = ""

    async def headers(self) -> Mapping[str, str]:
        return {} if self.key is None else self.client_headers(self.key.get_secret_value())

    def client_headers(self, api_key: str) -> Mapping[str, str]:
        return {self.name: f"{self.prefix}{api_key}"}


def bearer(key: SecretStr | None) -> KeyHeader:
    return KeyHeader("authorization", key, "Bearer ")


class RotatingBearer:
    """A bearer token that something else renews (Azure's Entra ID tokens last about an hour):
    a ``file:`` token is read again when the file is replaced or rewritten (``file_stamp``), a
    stat per call; an ``env:`` token is read once. ``client_key`` is how this kind takes a client's
    key (for Azure OpenAI, the ``api-key`` header)."""

    def __init__(self, ref: SecretRef, client_key: KeyHeader) -> None:
        self._ref = ref
        self._client_key = client_key
        self._seen: FileStamp = None
        self._value: dict[str, str] = {}

    def _stamp(self) -> FileStamp:
        """The token file's stamp; an ``env:`` token never changes (a constant stamp)."""
        return file_stamp(self._ref.target) if self._ref.scheme == "file" else (0, 0, 0, 0)

    async def headers(self) -> Mapping[str, str]:
        stamp = self._stamp()
        if stamp is None or stamp != self._seen or not self._value:
            try:
                token = self._ref.resolve().get_secret_value()
            except SecretResolutionError as exc:
                if self._value:  # mid-rotation (file briefly gone): the last token may still do
                    return self._value
                raise UpstreamTransientError(str(exc), code="credentials_unavailable") from None
            self._value = {"authorization": f"Bearer {token}"}
            self._seen = stamp
        return self._value

    def client_headers(self, api_key: str) -> Mapping[str, str]:
        return self._client_key.client_headers(api_key)
