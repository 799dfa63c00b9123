"""Cost of a call from the provider's own token counts and the deployment's prices."""

from __future__ import annotations

from typing import Any

from anygate.config import Deployment


def cost_usd(usage: dict[str, Any] | None, deployment: Deployment) -> float | None:
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return round(
        (prompt * deployment.input_price_per_m + completion * deployment.output_price_per_m)
        / 1_000_000,
        10,
    )
