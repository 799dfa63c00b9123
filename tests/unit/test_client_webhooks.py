"""The client's webhook verifier accepts what the gateway signs (``workers.webhooks.signature``,
the sender's own code) and refuses anything else: another body, another secret, an old or
future time, a malformed header."""

from __future__ import annotations

import json
import time

import pytest

from anygate.client import WebhookVerificationError, verify_webhook
from anygate.workers.webhooks import signature

SECRET = "whsec-test-0123456789"
BODY = json.dumps(
    {"type": "job.succeeded", "data": {"id": "job_1", "object": "job", "status": "succeeded"}}
).encode()


def test_a_signature_made_by_the_gateway_verifies() -> None:
    header = signature(SECRET.encode(), BODY, int(time.time()))
    event = verify_webhook(BODY, header, SECRET)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == "job_1"
    assert verify_webhook(BODY, header, SECRET.encode()) == event, "the secret as bytes too"


def test_a_header_with_several_signatures_verifies_when_one_matches() -> None:
    now = int(time.time())
    good = signature(SECRET.encode(), BODY, now)
    rotated = f"{good},v1={'0' * 64}"
    assert verify_webhook(BODY, rotated, SECRET)["type"] == "job.succeeded"


@pytest.mark.parametrize(
    ("body", "secret", "match"),
    [
        (BODY.replace(b"succeeded", b"failed"), SECRET, "does not match"),
        (BODY + b" ", SECRET, "does not match"),
        (BODY, "another-secret", "does not match"),
    ],
)
def test_a_tampered_body_or_wrong_secret_is_refused(body: bytes, secret: str, match: str) -> None:
    header = signature(SECRET.encode(), BODY, int(time.time()))
    with pytest.raises(WebhookVerificationError, match=match):
        verify_webhook(body, header, secret)


def test_an_old_or_future_time_is_refused() -> None:
    now = 1_800_000_000
    old = signature(SECRET.encode(), BODY, now - 301)
    ahead = signature(SECRET.encode(), BODY, now + 301)
    with pytest.raises(WebhookVerificationError, match="old"):
        verify_webhook(BODY, old, SECRET, now=now)
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_webhook(BODY, ahead, SECRET, now=now)
    assert verify_webhook(BODY, old, SECRET, now=now, tolerance_s=600)["type"]
    within = signature(SECRET.encode(), BODY, now - 299)
    assert verify_webhook(BODY, within, SECRET, now=now)["type"]


def test_the_time_is_part_of_what_is_signed() -> None:
    now = int(time.time())
    mac = signature(SECRET.encode(), BODY, now - 1000).split("v1=")[1]
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_webhook(BODY, f"t={now},v1={mac}", SECRET)


SIGNED_AT = 1_800_000_000
"""A fixed "now" for headers built at collection time: a suite runs long after it collects."""


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, "no x-anygate-signature"),
        ("", "no x-anygate-signature"),
        ("v1=abc", "no t="),
        ("t=soon,v1=abc", "not a Unix time"),
        (f"t={SIGNED_AT}", "no v1="),
        (f"t={SIGNED_AT},v1=ünïcödé", "does not match"),
    ],
)
def test_a_malformed_header_is_refused(header: str | None, match: str) -> None:
    with pytest.raises(WebhookVerificationError, match=match):
        verify_webhook(BODY, header, SECRET, now=SIGNED_AT)


def test_a_signed_body_that_is_not_an_object_is_refused() -> None:
    body = b"[1, 2]"
    with pytest.raises(WebhookVerificationError, match="not a JSON object"):
        verify_webhook(body, signature(SECRET.encode(), body, int(time.time())), SECRET)
