"""When the client tries again, and after how long (docs/client.md#retries): the pure decisions,
then both clients against a scripted gateway (``httpx.MockTransport``), pauses recorded."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from anygate.client import (
    APIConnectionError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)
from anygate.client._retry import RetryPolicy, parse_retry_after
from tests.support.client_kinds import KINDS, open_client, record_pauses

JOB = {"id": "job_1", "object": "job", "status": "queued"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), (" 2 ", 2.0), ("0.5", 0.5), ("0", 0.0), ("-4", 0.0), (None, None), ("soon", None)],
)
def test_retry_after_in_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_as_an_http_date() -> None:
    now = 1_800_000_000.0
    later = email.utils.formatdate(now + 42, usegmt=True)
    earlier = email.utils.formatdate(now - 42, usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(42)
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("Mon, 32 Foo 2026 99:99:99", now=now) is None


def test_only_429_and_503_are_retried_and_retry_after_wins() -> None:
    policy = RetryPolicy(max_retries=2, rng=random.Random(1))
    assert policy.after_status(0, 429, 3.0) == 3.0
    assert policy.after_status(0, 503, None) is not None
    for status in (400, 404, 409, 500, 502):
        assert policy.after_status(0, status, 1.0) is None
    assert policy.after_status(2, 429, 1.0) is None, "max_retries spent"


def test_a_retry_after_beyond_the_cap_is_not_waited_out() -> None:
    policy = RetryPolicy(max_retry_after=30)
    assert policy.after_status(0, 429, 30.0) == 30.0
    assert policy.after_status(0, 429, 86_400.0) is None


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=random.Random(7))
    for retry, full in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (9, 4.0)]:
        delays = {policy.backoff(retry) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays), (retry, delays)
        assert len(delays) > 1, "jittered"


def test_transport_errors_are_retried_only_when_safe() -> None:
    policy = RetryPolicy(max_retries=1)
    refused = httpx.ConnectError("refused")
    broken = httpx.ReadError("reset")
    assert policy.after_error(0, refused, idempotent=False) is not None, "nothing was sent"
    assert policy.after_error(0, broken, idempotent=True) is not None
    assert policy.after_error(0, broken, idempotent=False) is None, "it may have been done"
    assert policy.after_error(1, refused, idempotent=True) is None


def test_max_retries_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def _scripted(
    answers: list[Callable[[httpx.Request], httpx.Response]],
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A gateway that answers each request with the next of ``answers`` (the last repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1](request)

    return httpx.MockTransport(handle), seen


def _status(code: int, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    body = {"error": {"message": "busy", "type": "rate_limit_error", "code": "queue_full"}}
    return lambda _r: httpx.Response(code, json=body, headers=headers)


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def answer(_request: httpx.Request) -> httpx.Response:
        raise exc

    return answer


def _job(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(202, json=JOB)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_429_is_retried_after_its_retry_after(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = record_pauses(monkeypatch)
    transport, seen = _scripted([_status(429, **{"retry-after": "2"}), _status(503), _job])
    async with open_client(kind, "http://gw", "k", transport=transport) as ag:
        job = await ag.submit("/v1/chat/completions", CHAT)
    assert job.id == "job_1"
    assert len(seen) == 3
    assert pauses[0] == 2.0, "Retry-After honoured"
    assert 0 < pauses[1] <= 1.0, "then backoff (no Retry-After given)"
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(keys) == 1, "every try of one submit carries the same idempotency key"


@pytest.mark.parametrize("kind", KINDS)
async def test_retries_end_with_the_typed_error(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses = record_pauses(monkeypatch)
    transport, seen = _scripted([_status(429, **{"retry-after": "1"})])
    async with open_client(kind, "http://gw", "k", transport=transport, max_retries=2) as ag:
        with pytest.raises(RateLimitError) as raised:
            await ag.get("job_1")
    assert len(seen) == 3
    assert pauses == [1.0, 1.0]
    assert raised.value.retry_after == 1.0
    assert raised.value.code == "queue_full"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_long_retry_after_is_raised_at_once(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = record_pauses(monkeypatch)
    transport, seen = _scripted([_status(503, **{"retry-after": "3600"})])
    async with open_client(kind, "http://gw", "k", transport=transport) as ag:
        with pytest.raises(ServiceUnavailableError) as raised:
            await ag.get("job_1")
    assert (len(seen), pauses) == (1, [])
    assert raised.value.retry_after == 3600


@pytest.mark.parametrize("kind", KINDS)
async def test_other_errors_are_not_retried(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    record_pauses(monkeypatch)
    transport, seen = _scripted([_status(500)])
    async with open_client(kind, "http://gw", "k", transport=transport) as ag:
        with pytest.raises(InternalServerError):
            await ag.get("job_1")
    assert len(seen) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_broken_connection_is_retried_for_a_get_and_a_keyed_submit(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = record_pauses(monkeypatch)
    transport, seen = _scripted([_raise(httpx.ReadError("reset")), _job])
    async with open_client(kind, "http://gw", "k", transport=transport) as ag:
        assert (await ag.get("job_1")).id == "job_1"
        seen.clear()
        assert (await ag.submit("/v1/chat/completions", CHAT)).id == "job_1"
    assert len(seen) == 2
    assert seen[0].headers["idempotency-key"] == seen[1].headers["idempotency-key"]
    assert len(pauses) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_a_broken_connection_is_not_retried_for_a_batch_create(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_pauses(monkeypatch)
    transport, seen = _scripted([_raise(httpx.ReadError("reset"))])
    async with open_client(kind, "http://gw", "secret-key", transport=transport) as ag:
        with pytest.raises(APIConnectionError) as raised:
            await ag.create_batch("file_1")
    assert len(seen) == 1, "it may have made a batch: not sent again"
    assert "/v1/batches" in str(raised.value)
    assert "secret-key" not in str(raised.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_connection_is_retried_for_any_request(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = record_pauses(monkeypatch)
    batch: dict[str, Any] = {"id": "batch_1", "status": "validating"}
    transport, seen = _scripted(
        [_raise(httpx.ConnectError("refused")), lambda _r: httpx.Response(200, json=batch)]
    )
    async with open_client(kind, "http://gw", "k", transport=transport) as ag:
        made = await ag.create_batch("file_1")
    assert made.id == "batch_1"
    assert (len(seen), len(pauses)) == (2, 1)
