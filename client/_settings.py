"""What both clients are built from: the gateway's URL and key (given, or from the environment),
timeouts, TLS and the retry policy."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import httpx

from anygate.client._retry import RetryPolicy

URL_ENV = "ANYGATE_URL"
KEY_ENV = "ANYGATE_KEY"


def _version() -> str:
    try:
        return metadata.version("anygate")
    except metadata.PackageNotFoundError:
        return "0"


@dataclass(frozen=True, slots=True)
class Settings:
    base_url: str
    api_key: str
    timeout: httpx.Timeout
    verify: ssl.SSLContext | bool
    policy: RetryPolicy

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: float,
        verify: ssl.SSLContext | str | bool,
        max_retries: int,
    ) -> Settings:
        """``base_url``/``api_key`` default to ``$ANYGATE_URL``/``$ANYGATE_KEY``; a missing
        one is a ``ValueError`` naming both ways to give it."""
        url = base_url or os.environ.get(URL_ENV)
        if not url:
            raise ValueError(f"base_url: not given and ${URL_ENV} is not set")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected http(s)://host[:port], got {url!r}")
        key = api_key or os.environ.get(KEY_ENV)
        if not key:
            raise ValueError(f"api_key: not given and ${KEY_ENV} is not set")
        if timeout <= 0:
            raise ValueError("timeout: must be more than 0 seconds")
        return cls(
            base_url=url.rstrip("/"),
            api_key=key,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            verify=ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify,
            policy=RetryPolicy(max_retries=max_retries),
        )

    def http_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client``/``httpx.AsyncClient``."""
        return {
            "base_url": self.base_url,
            "headers": {
                "authorization": f"Bearer {self.api_key}",
                "user-agent": f"anygate-client/{_version()}",
            },
            "timeout": self.timeout,
            "verify": self.verify,
        }
