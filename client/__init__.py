"""Client for the native job API; imports with httpx alone (``events()`` also uses httpx-sse)."""

from anygate.client._client import AnygateClient, JobEvent
from anygate.client._errors import AnygateClientError

__all__ = ["AnygateClient", "AnygateClientError", "JobEvent"]
