"""Checking a webhook the gateway sent (docs/api.md#webhooks), for receivers.

``x-anygate-signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` under the
gateway's ``security.webhook_secret``. The check proves who sent the body and that it is fresh:
a ``t`` further than ``tolerance_s`` from now, either way, is refused (a replayed delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from anygate.client._errors import WebhookVerificationError

SIGNATURE_HEADER = "x-anygate-signature"


def _parts(header: str) -> tuple[int, list[str]]:
    stamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                stamp = int(value)
            except ValueError:
                raise WebhookVerificationError("signature: t is not a Unix time") from None
        elif name == "v1":
            signatures.append(value)
    if stamp is None:
        raise WebhookVerificationError("signature: no t=<unix seconds> in the header")
    if not signatures:
        raise WebhookVerificationError("signature: no v1=<hex> in the header")
    return stamp, signatures


def verify_webhook(
    body: bytes,
    signature_header: str | None,
    secret: str | bytes,
    *,
    tolerance_s: float = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """The webhook's event (``{"type": ..., "data": {...}}``) once its signature is checked;
    ``WebhookVerificationError`` when the header is missing or malformed, the signature does
    not match the body under ``secret``, or its time is more than ``tolerance_s`` away.

    Pass the body exactly as received (bytes): re-serialised JSON would not match."""
    if not signature_header:
        raise WebhookVerificationError(f"signature: no {SIGNATURE_HEADER} header")
    if not secret:
        raise WebhookVerificationError("secret: empty")
    key = secret.encode() if isinstance(secret, str) else secret
    stamp, signatures = _parts(signature_header)
    age = (time.time() if now is None else now) - stamp
    if abs(age) > tolerance_s:
        when = "old" if age > 0 else "far in the future"
        raise WebhookVerificationError(f"signature: t is {abs(age):.0f} s {when}")
    expected = hmac.new(key, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected.encode(), given.encode()) for given in signatures):
        raise WebhookVerificationError("signature: does not match the body")
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("body: not JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("body: not a JSON object")
    return event
