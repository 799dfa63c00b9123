"""Whose provider key a request spends (docs/operations.md#security auth modes): the gateway's, or
the client's.

A client brings its own key (BYOK) in ``x-anygate-provider-key`` on any surface, or — so that
the official SDKs work unchanged with ``api_key=<provider key>`` — in the surface's native
header (``Authorization`` for OpenAI, ``x-goog-api-key`` for Gemini) while its gateway key
travels in ``x-anygate-api-key``. The tenant's ``auth_mode`` decides what is allowed:
``gateway`` refuses a client key (it would not be used, and the caller should know),
``passthrough`` requires one, ``hybrid`` takes one when sent.

A client key works only with deployments of its own provider: a Gemini key cannot pay for an
OpenAI call. The route is narrowed to those; a route with none of them is a 400 naming the
model.
"""

from __future__ import annotations

import re

from pydantic import SecretStr
from starlette.requests import Request

from anygate.api.auth import TENANT_KEY_HEADER, Tenant, native_credential
from anygate.broker.errors import AuthenticationError, InvalidRequestError
from anygate.broker.routing import Step
from anygate.config import AnygateConfig, ProviderKind

PROVIDER_KEY_HEADER = "x-anygate-provider-key"
_PRINTABLE = re.compile(r"^[\x21-\x7e]{8,512}$")


def _family(kind: ProviderKind) -> str:
    """Which keys a kind takes: an OpenAI key is no Azure key and a Gemini API key no Vertex
    token, so those two kinds take only keys sent for them (``x-anygate-provider-key``)."""
    if kind in {ProviderKind.AZURE_OPENAI, ProviderKind.VERTEX}:
        return kind.value
    return "gemini" if kind is ProviderKind.GEMINI else "openai"


def offered_key(request: Request) -> tuple[str, str | None, str] | None:
    """``(key, provider family or None when unknown, where it came from)``."""
    explicit = request.headers.get(PROVIDER_KEY_HEADER)
    if explicit is not None:
        return explicit.strip(), None, PROVIDER_KEY_HEADER
    if request.headers.get(TENANT_KEY_HEADER) is None:
        return None  # the native header holds the gateway key
    found = native_credential(request)
    if found is None:
        return None
    key, where = found
    return key, ("gemini" if where in {"x-goog-api-key", "key"} else "openai"), where


def client_provider_key(
    request: Request, tenant: Tenant, steps: list[Step], config: AnygateConfig
) -> tuple[SecretStr | None, list[Step]]:
    """The client's key for this job (or None: the gateway's), and the route it may take."""
    offered = offered_key(request)
    if offered is None:
        if tenant.auth_mode == "passthrough":
            raise AuthenticationError(
                f"tenant {tenant.id!r} calls providers with its own key: send it in "
                f"{PROVIDER_KEY_HEADER} (or in the SDK's api_key, with the gateway key in "
                f"{TENANT_KEY_HEADER})",
                code="provider_key_required",
            )
        return None, steps
    key, family, where = offered
    if tenant.auth_mode == "gateway":
        raise InvalidRequestError(
            f"{where}: tenant {tenant.id!r} uses the gateway's provider keys and does not "
            "accept a client provider key",
            param=where,
            code="byok_not_enabled",
        )
    if not _PRINTABLE.match(key):
        raise InvalidRequestError(
            f"{where}: a provider key is 8 to 512 printable ASCII characters",
            param=where,
            code="invalid_provider_key",
        )
    family = family or _family(config.providers[steps[0].provider].kind)
    usable = [s for s in steps if _family(config.providers[s.provider].kind) == family]
    if not usable:
        raise InvalidRequestError(
            f"model: {steps[0].alias!r} has no {family} deployment for the client's {family} "
            "provider key",
            param="model",
            code="no_deployment_for_provider_key",
        )
    return SecretStr(key), usable
