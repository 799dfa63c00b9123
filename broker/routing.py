"""Which provider pool and deployment serves a model alias: pure decisions over config.

Issue-level scope today: a model's first deployment decides its pool; a worker serves the first
deployment of its own pool. Strategies and fallback chains plug in here without touching callers.
"""

from __future__ import annotations

from dataclasses import dataclass

from anygate.broker.errors import InvalidRequestError, ModelNotFoundError
from anygate.config import AnygateConfig, Deployment, ModelKind, ModelRoute

ENDPOINT_KINDS: dict[str, ModelKind] = {
    "/v1/chat/completions": ModelKind.CHAT,
    "/v1/embeddings": ModelKind.EMBEDDING,
}


@dataclass(frozen=True, slots=True)
class Placement:
    pool: str
    route: ModelRoute


def place(config: AnygateConfig, endpoint: str, model: str) -> Placement:
    """The pool a new job for ``model`` is queued in; errors name the field at fault."""
    kind = ENDPOINT_KINDS.get(endpoint)
    if kind is None:
        raise InvalidRequestError(
            f"unsupported endpoint {endpoint!r}; expected one of {sorted(ENDPOINT_KINDS)}",
            param="endpoint",
        )
    route = config.models.get(model)
    if route is None:
        raise ModelNotFoundError(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )
    if route.kind is not kind:
        raise InvalidRequestError(
            f"model {model!r} is a {route.kind.value} model and cannot serve {endpoint}",
            param="model",
        )
    return Placement(route.deployments[0].provider, route)


def deployment_for(config: AnygateConfig, model: str, pool: str) -> Deployment | None:
    route = config.models.get(model)
    if route is None:
        return None
    return next((d for d in route.deployments if d.provider == pool), None)
