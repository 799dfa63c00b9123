"""Map a method and path to a provider endpoint without a routing framework.

OpenAI and Gemini's `v1` API both live under `/v1/models`; for those GETs the credential decides
(an `x-goog-api-key` header or `key=` query parameter means Gemini), which is how a real client
of each provider presents itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Provider = Literal["openai", "gemini", "azure", "vertex"]

_GEMINI_ACTIONS: dict[str, str] = {
    "generateContent": "generate",
    "streamGenerateContent": "stream_generate",
    "embedContent": "embed",
    "batchEmbedContents": "batch_embed",
    "countTokens": "count_tokens",
}
_OPENAI_POSTS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
}


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    endpoint: str
    model: str | None = None


def resolve(method: str, path: str, *, gemini_credentials: bool) -> Route:
    """The endpoint for a request; `not_found` and `method_not_allowed` are endpoints too."""
    if _azure_prefix(path) is not None:
        return _azure(method, path)
    if path.startswith(("/v1/projects/", "/v1beta1/projects/")):
        return _vertex(method, path)
    if path == "/token":
        return Route("vertex", "token" if method == "POST" else "method_not_allowed")
    openai_post = _OPENAI_POSTS.get(path)
    if openai_post is not None:
        return Route("openai", openai_post if method == "POST" else "method_not_allowed")
    if path.startswith("/v1beta/"):
        return _gemini(method, path[len("/v1beta") :])
    if path.startswith("/v1/models"):
        if gemini_credentials or ":" in path:
            return _gemini(method, path[len("/v1") :])
        return _openai_models(method, path[len("/v1/models") :])
    return Route("gemini" if path.startswith("/v1beta") else "openai", "not_found")


def _openai_models(method: str, rest: str) -> Route:
    if rest in ("", "/"):
        return Route("openai", "models" if method == "GET" else "method_not_allowed")
    model = rest[1:]
    if not rest.startswith("/") or not model or "/" in model:
        return Route("openai", "not_found")
    return Route("openai", "model" if method == "GET" else "method_not_allowed", model)


def _gemini(method: str, rest: str) -> Route:
    if rest in ("/models", "/models/"):
        return Route("gemini", "models" if method == "GET" else "method_not_allowed")
    if not rest.startswith("/models/"):
        return Route("gemini", "not_found")
    name = rest[len("/models/") :]
    model, colon, action = name.partition(":")
    if not model or "/" in model:
        return Route("gemini", "not_found")
    if not colon:
        return Route("gemini", "model" if method == "GET" else "method_not_allowed", model)
    endpoint = _GEMINI_ACTIONS.get(action)
    if endpoint is None:
        return Route("gemini", "not_found", model)
    return Route("gemini", endpoint if method == "POST" else "method_not_allowed", model)


_AZURE_POSTS = {"/chat/completions": "chat", "/embeddings": "embeddings"}


def _azure_prefix(path: str) -> str | None:
    """Azure paths start ``/openai/``; the mock also takes one segment before it
    (``/res-a/openai/...``), so that one mock can stand for several Azure resources."""
    at = path.find("/openai/")
    if at < 0:
        return None
    prefix = path[:at]
    return prefix if prefix == "" or (prefix.count("/") == 1 and len(prefix) > 1) else None


def _azure(method: str, path: str) -> Route:
    """``/openai/deployments/{deployment}/chat/completions`` and ``.../embeddings``."""
    rest = path[len(_azure_prefix(path) or "") :].removeprefix("/openai/deployments/")
    deployment, slash, tail = rest.partition("/")
    endpoint = _AZURE_POSTS.get(f"/{tail}") if slash and deployment else None
    if endpoint is None or not path.removeprefix(_azure_prefix(path) or "").startswith(
        "/openai/deployments/"
    ):
        return Route("azure", "not_found")
    return Route("azure", endpoint if method == "POST" else "method_not_allowed", deployment)


def _vertex(method: str, path: str) -> Route:
    """``/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{action}`` (or
    ``/v1beta1/...``, which google-genai uses)."""
    parts = path.split("/")
    # ['', 'v1', 'projects', p, 'locations', l, 'publishers', 'google', 'models', 'm:action']
    if (
        len(parts) != 10
        or parts[4] != "locations"
        or parts[6:9] != ["publishers", "google", "models"]
    ):
        return Route("vertex", "not_found")
    model, _, action = parts[9].partition(":")
    endpoint = _GEMINI_ACTIONS.get(action) if model else None
    if endpoint not in {"generate", "stream_generate"}:
        return Route("vertex", "not_found", model or None)
    return Route("vertex", endpoint if method == "POST" else "method_not_allowed", model)
