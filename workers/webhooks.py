"""Completion webhooks: POSTed once per event, HMAC-signed, retried with backoff by arq.

The signature follows the scheme Stripe made familiar: ``x-anygate-signature: t=<unix
seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` under ``security.webhook_secret``, so a receiver
can check both who sent it and that it is fresh (reject old ``t`` against replays). A delivery
that fails (connection error, timeout, non-2xx) is retried (by arq, in ``control.py``) after
a full-jitter exponential delay, up to ``MAX_TRIES``; the ``x-anygate-delivery`` id stays the
same across retries so a receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import structlog

from anygate.telemetry import count_webhook
from anygate.workers.backoff import retry_delay
from anygate.workers.metric_labels import webhook_kind

log = structlog.get_logger(__name__)
# structlog's methods take the message as their first parameter, named ``event``: a keyword of
# that name collides with it (a TypeError, after the delivery was made). The webhook's event
# type is logged as ``webhook_event``.

MAX_TRIES = 8
TIMEOUT_S = 10.0


def signature(secret: bytes, body: bytes, at: int) -> str:
    mac = hmac.new(secret, f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, tolerance_s: int = 300) -> bool:
    """What a receiver does (and what the tests check)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        at = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - at) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, body, at), f"t={at},v1={parts.get('v1', '')}")


async def post_webhook(
    secret: bytes, url: str, body: bytes, *, event: str, delivery_id: str, attempt: int
) -> float | None:
    """One delivery attempt; the delay before the next one, or None when there is none."""
    headers = {
        "content-type": "application/json",
        "user-agent": "anygate-webhooks",
        "x-anygate-event": event,
        "x-anygate-delivery": delivery_id,
        "x-anygate-signature": signature(secret, body, int(time.time())),
    }
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            answer = await client.post(url, content=body, headers=headers)
        ok, why = answer.is_success, f"HTTP {answer.status_code}"
    except httpx.HTTPError as exc:
        ok, why = False, type(exc).__name__
    kind = webhook_kind(event)
    if ok:
        count_webhook(kind, "delivered")
        log.info("webhook delivered", delivery=delivery_id, webhook_event=event, attempt=attempt)
        return None
    if attempt >= MAX_TRIES:
        count_webhook(kind, "abandoned")
        log.warning("webhook abandoned", delivery=delivery_id, webhook_event=event, why=why)
        return None
    count_webhook(kind, "retried")
    delay = retry_delay(attempt, base_s=1.0, cap_s=300.0)
    log.info(
        "webhook failed; retrying",
        delivery=delivery_id,
        why=why,
        attempt=attempt,
        retry_in_s=round(delay, 2),
    )
    return delay
