"""Client for the native job API; imports with httpx alone (``events()`` also uses httpx-sse)."""

from anygate.client._client import AnswerText, AnygateClient, JobEvent, TextDelta
from anygate.client._errors import AnygateClientError

__all__ = ["AnswerText", "AnygateClient", "AnygateClientError", "JobEvent", "TextDelta"]
