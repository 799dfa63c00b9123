"""Where an adapter's calls go and how they authenticate, per provider kind and account.

A *target* is the only thing that differs between OpenAI and Azure OpenAI (or between Gemini's
API and Vertex AI): the URL of an endpoint for a model, and the credentials' headers. The
adapters keep the wire format (bodies, streams, errors) and ask their target for the rest, so
one adapter serves every host of its format and every account of a provider.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import quote

from pydantic import SecretStr

from anygate.config import ProviderConfig, ProviderKind
from anygate.workers.adapters.auth import Auth, KeyHeader, RotatingBearer, bearer
from anygate.workers.adapters.base import Account
from anygate.workers.adapters.google_token import ServiceAccountToken, load_service_account

GEMINI_API_VERSION = "v1beta"
VERTEX_API_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class OpenAITarget:
    """OpenAI's routes (``{base}/chat/completions``) or, with ``api_version``, Azure OpenAI's
    (``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``, the
    deployment being the route's upstream model)."""

    base_url: str
    auth: Auth
    api_version: str | None = None

    def url(self, endpoint: str, model: str) -> str:
        path = endpoint.removeprefix("/v1")
        if self.api_version is None:
            return self.base_url + path
        deployment = quote(model, safe="")
        version = quote(self.api_version, safe="")
        return f"{self.base_url}/openai/deployments/{deployment}{path}?api-version={version}"


def gemini_model_path(upstream_model: str) -> str:
    """``gemini-2.5-flash`` → ``models/gemini-2.5-flash``; ``tunedModels/x`` stays as it is."""
    name = upstream_model if "/" in upstream_model else f"models/{upstream_model}"
    return quote(name, safe="/-._~")


def gemini_api_root(base_url: str) -> str:
    """The configured base may be the host (the default) or already end in an API version."""
    base = base_url.rstrip("/")
    if base.rsplit("/", 1)[-1] in {"v1", "v1beta", "v1alpha"}:
        return base
    return f"{base}/{GEMINI_API_VERSION}"


@dataclass(frozen=True, slots=True)
class GeminiTarget:
    """``{root}/models/{model}:{method}``: the root is Gemini API's ``{host}/v1beta``, or
    Vertex AI's ``{host}/v1/projects/{project}/locations/{location}/publishers/google``."""

    root: str
    auth: Auth

    def url(self, model: str, method: str) -> str:
        return f"{self.root}/{gemini_model_path(model)}:{method}"


def vertex_root(host: str, project: str, location: str) -> str:
    return (
        f"{host.rstrip('/')}/{VERTEX_API_VERSION}/projects/{quote(project, safe='')}"
        f"/locations/{quote(location, safe='')}/publishers/google"
    )


T = TypeVar("T")


@dataclass
class Targets(Generic[T]):
    """The provider's own target and, made on first use, one per account."""

    default: T
    make: Callable[[Account], T]
    _accounts: dict[Account, T] = field(default_factory=dict)

    def of(self, account: Account | None) -> T:
        if account is None:
            return self.default
        target = self._accounts.get(account)
        if target is None:
            target = self._accounts[account] = self.make(account)
        return target


def provider_auth(provider: ProviderConfig) -> Auth:
    """The provider's own credentials, as its kind sends them."""
    key = provider.api_key.resolve() if provider.api_key is not None else None
    if provider.kind is ProviderKind.VERTEX:
        return ServiceAccountToken(load_service_account(provider))
    if provider.kind is ProviderKind.AZURE_OPENAI and provider.azure_ad_token is not None:
        return RotatingBearer(provider.azure_ad_token, KeyHeader("api-key", None))
    return key_header(provider.kind, key)


def key_header(kind: ProviderKind, key: SecretStr | None) -> KeyHeader:
    """Where a kind takes a static key: Azure's ``api-key``, Gemini's ``x-goog-api-key``, else
    OpenAI's bearer."""
    if kind is ProviderKind.AZURE_OPENAI:
        return KeyHeader("api-key", key)
    if kind is ProviderKind.GEMINI:
        return KeyHeader("x-goog-api-key", key)
    return bearer(key)


def _account_auth(provider: ProviderConfig, shared: Auth, account: Account) -> Auth:
    if account.api_key is None:
        return shared
    return key_header(provider.kind, account.api_key.resolve())


def openai_targets(provider: ProviderConfig) -> Targets[OpenAITarget]:
    """OpenAI, OpenAI-compatible servers and Azure OpenAI, for the provider and its accounts."""
    auth = provider_auth(provider)
    version = provider.api_version if provider.kind is ProviderKind.AZURE_OPENAI else None

    def make(account: Account) -> OpenAITarget:
        base = (account.base_url or provider.resolved_base_url()).rstrip("/")
        return OpenAITarget(base, _account_auth(provider, auth, account), version)

    return Targets(OpenAITarget(provider.resolved_base_url(), auth, version), make)


def gemini_targets(provider: ProviderConfig) -> Targets[GeminiTarget]:
    """Gemini's API or Vertex AI, for the provider and its accounts."""
    auth = provider_auth(provider)

    def root(host: str) -> str:
        if provider.kind is ProviderKind.VERTEX:
            assert provider.project is not None
            assert provider.location is not None
            return vertex_root(host, provider.project, provider.location)
        return gemini_api_root(host)

    def make(account: Account) -> GeminiTarget:
        host = account.base_url or provider.resolved_base_url()
        return GeminiTarget(root(host), _account_auth(provider, auth, account))

    return Targets(GeminiTarget(root(provider.resolved_base_url()), auth), make)
