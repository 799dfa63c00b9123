"""Cost of a call from the provider's own token counts and the deployment's prices."""

from __future__ import annotations

from typing import Any

from anygate.config import Deployment


def cost_usd(
    usage: dict[str, Any] | None, deployment: Deployment, *, price_ratio: float = 1.0
) -> float | None:
    """``price_ratio``: the share of the list price charged (a provider batch's discount)."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    listed = prompt * deployment.input_price_per_m + completion * deployment.output_price_per_m
    return round(listed * price_ratio / 1_000_000, 10)
