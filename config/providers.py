"""Providers, the deployments of a model alias, and its route (docs/operations.md#providers,
docs/operations.md#accounts)."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from anygate.config.base import StrictModel
from anygate.config.secrets import SecretRef


class ProviderKind(enum.StrEnum):
    OPENAI = "openai"
    GEMINI = "gemini"
    OPENAI_COMPATIBLE = "openai_compatible"
    AZURE_OPENAI = "azure_openai"
    VERTEX = "vertex"

    @property
    def speaks_gemini(self) -> bool:
        """Gemini's request and response shapes (AI Studio's API or Vertex AI's)."""
        return self in {ProviderKind.GEMINI, ProviderKind.VERTEX}


_HTTP_URL = r"^https?://[^\s/?#]+[^\s?#]*$"
_API_VERSION = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$"


class ProviderConfig(StrictModel):
    kind: ProviderKind
    base_url: Annotated[str, Field(pattern=_HTTP_URL)] | None = None
    """Defaults per kind; point it at any compatible server (vLLM, Ollama, the mock). For
    ``azure_openai``: the resource endpoint, ``https://<resource>.openai.azure.com`` (required).
    For ``vertex``: overrides the regional host (tests, private endpoints)."""
    api_key: SecretRef | None = None
    """For ``azure_openai``: sent as the ``api-key`` header (or use ``azure_ad_token``)."""
    timeout_s: Annotated[float, Field(gt=0)] = 600.0
    connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    api_version: Annotated[str, Field(pattern=_API_VERSION)] | None = None
    """``azure_openai`` only, required: the ``api-version`` query parameter (``2024-10-21``)."""
    azure_ad_token: SecretRef | None = None
    """``azure_openai`` only: a Microsoft Entra ID access token, sent as ``Authorization:
    Bearer``, instead of ``api_key``. A ``file:`` token is read again whenever the file changes,
    so whatever renews the token (a sidecar, workload identity) only has to rewrite it."""
    project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$")] | None = None
    """``vertex`` only, required: the Google Cloud project id."""
    location: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,64}$")] | None = None
    """``vertex`` only, required: the region (``us-central1``) or ``global``."""
    credentials_file: Annotated[str, Field(min_length=1)] | None = None
    """``vertex`` only: path of a service-account JSON key file."""
    credentials: SecretRef | None = None
    """``vertex`` only: a secret holding the service-account JSON itself (``env:NAME``,
    ``file:/path``), instead of ``credentials_file``."""

    @model_validator(mode="after")
    def _kind_settings(self) -> ProviderConfig:
        azure = ("api_version", "azure_ad_token")
        vertex = ("project", "location", "credentials_file", "credentials")
        own = {ProviderKind.AZURE_OPENAI: azure, ProviderKind.VERTEX: vertex}.get(self.kind, ())
        for name in (*azure, *vertex):
            if name not in own and getattr(self, name) is not None:
                raise ValueError(f"{name}: not a setting of kind {self.kind.value}")
        if self.kind is ProviderKind.AZURE_OPENAI:
            self._check_azure()
        elif self.kind is ProviderKind.VERTEX:
            self._check_vertex()
        return self

    def _check_azure(self) -> None:
        if self.base_url is None:
            raise ValueError(
                "base_url: required with kind azure_openai (the resource endpoint, "
                "https://<resource>.openai.azure.com)"
            )
        if self.api_version is None:
            raise ValueError("api_version: required with kind azure_openai (e.g. 2024-10-21)")
        if (self.api_key is None) == (self.azure_ad_token is None):
            raise ValueError(
                "api_key, azure_ad_token: kind azure_openai takes exactly one of the two "
                "(an api-key, or an Entra ID bearer token)"
            )

    def _check_vertex(self) -> None:
        if self.project is None:
            raise ValueError("project: required with kind vertex (the Google Cloud project id)")
        if self.location is None:
            raise ValueError("location: required with kind vertex (us-central1, global, ...)")
        if (self.credentials_file is None) == (self.credentials is None):
            raise ValueError(
                "credentials_file, credentials: kind vertex takes exactly one of the two "
                "(the service account's JSON key, as a path or as a secret)"
            )
        if self.api_key is not None:
            raise ValueError(
                "api_key: kind vertex authenticates with a service account "
                "(credentials_file or credentials), not an API key"
            )

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.kind is ProviderKind.GEMINI:
            return "https://generativelanguage.googleapis.com"
        if self.kind is ProviderKind.VERTEX:
            prefix = "" if self.location == "global" else f"{self.location}-"
            return f"https://{prefix}aiplatform.googleapis.com"
        return "https://api.openai.com/v1"


class Deployment(StrictModel):
    provider: str
    model: str
    """The upstream's own model name (for ``azure_openai``: the Azure deployment's name)."""
    account: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")] | None = None
    """Which of the provider's accounts serves this deployment: a short label, required with
    ``api_key`` or ``base_url``. It keeps two deployments of one upstream model on two
    accounts apart: each has its own rate windows, cool-downs and breaker, kept under
    ``provider:model@account`` (docs/operations.md#accounts)."""
    api_key: SecretRef | None = None
    """This account's key, instead of the provider's (sent the way the provider's kind sends
    keys). Not for ``vertex``, whose credentials are the provider's service account."""
    base_url: Annotated[str, Field(pattern=_HTTP_URL)] | None = None
    """This account's base URL (for ``azure_openai``: its resource endpoint), instead of the
    provider's."""
    weight: Annotated[int, Field(ge=1)] = 1
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    input_price_per_m: Annotated[float, Field(ge=0)] = 0.0
    output_price_per_m: Annotated[float, Field(ge=0)] = 0.0
    batch_api: bool = False
    """Patient jobs of tenants that opt in may go to this deployment's provider Batch API
    (docs/provider-batches.md): OpenAI's ``/v1/batches``, Gemini's batch mode."""
    batch_price_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    """The share of the list prices a provider batch is charged (both providers: half)."""

    @model_validator(mode="after")
    def _account_named(self) -> Deployment:
        if self.account is None and (self.api_key is not None or self.base_url is not None):
            raise ValueError(
                "account: required with a deployment's own api_key or base_url (a short "
                "label that keeps this account's limits and health apart)"
            )
        return self


class ModelKind(enum.StrEnum):
    CHAT = "chat"
    EMBEDDING = "embedding"


class ModelRoute(StrictModel):
    kind: ModelKind = ModelKind.CHAT
    deployments: Annotated[tuple[Deployment, ...], Field(min_length=1)]
    strategy: Literal["ordered", "weighted", "least_busy", "lowest_latency", "lowest_cost"] = (
        "ordered"
    )
    fallbacks: tuple[str, ...] = ()
    cache: bool = False
    """Answer identical requests from the response cache (docs/queue-semantics.md#cache); a request
    can opt in or out on its own with ``x-anygate-cache: use|skip|refresh``."""
