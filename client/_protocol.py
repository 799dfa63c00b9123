"""Every operation of the client, written once, as a generator that *asks* for I/O instead of
doing it (the "sans-I/O" style): it yields an effect (send this request, sleep, read the next
SSE event of that response, hand this item to the caller) and is resumed with the outcome, or
has a transport error thrown into it. ``Client`` and ``AsyncClient`` only carry the effects
out, with ``httpx.Client``/``time.sleep`` or ``httpx.AsyncClient``/``asyncio.sleep``; what to
send, what an answer means and when to try again is decided here and in the modules it uses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import httpx

from anygate.client._calls import Call
from anygate.client._errors import (
    APIConnectionError,
    APIStatusError,
    UnexpectedResponseError,
    status_error,
)
from anygate.client._retry import RetryPolicy, parse_retry_after

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``call``; resumed with the ``httpx.Response`` (its body read), or with an
    ``Opened`` one when ``stream`` (its body read by ``NextSSE``/``NextLine``/``ReadBody``)."""

    call: Call
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(slots=True)
class Opened:
    """A response whose body is being read; ``reader`` is the transport's iterator over it."""

    response: httpx.Response
    reader: Any = None


@dataclass(frozen=True, slots=True)
class NextSSE:
    """Resumed with the next ``httpx_sse.ServerSentEvent``, or None at the end of the body."""

    stream: Opened


@dataclass(frozen=True, slots=True)
class NextLine:
    """Resumed with the next line of the body (str), or None at its end."""

    stream: Opened


@dataclass(frozen=True, slots=True)
class ReadBody:
    """Read the rest of the body (an error answer's) into ``response.content``."""

    stream: Opened


@dataclass(frozen=True, slots=True)
class Close:
    stream: Opened


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand ``item`` to the caller of an iterating operation (``list``, ``stream``...)."""

    item: Any


Effect = Send | Sleep | NextSSE | NextLine | ReadBody | Close | Emit
Op = Generator[Effect, Any, T]


class Stepper(Generic[T]):
    """Drives an operation one effect at a time; ``result`` is its return value once
    ``advance`` has answered None."""

    def __init__(self, op: Op[T]) -> None:
        self.op = op
        self.result: T | None = None

    def advance(self, value: Any = None, error: BaseException | None = None) -> Effect | None:
        try:
            if error is not None:
                return self.op.throw(error)
            return self.op.send(value)
        except StopIteration as stop:
            self.result = cast("T", stop.value)
            return None


def _error_of(response: httpx.Response) -> APIStatusError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text or None
    return status_error(
        response.status_code,
        body,
        response.headers.get("x-request-id"),
        parse_retry_after(response.headers.get("retry-after")),
    )


def _connection_error(call: Call, exc: httpx.TransportError) -> APIConnectionError:
    """No secret in it: the URL path only (keys travel in headers, never in our paths)."""
    return APIConnectionError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}")


def send(call: Call, policy: RetryPolicy, *, stream: bool = False) -> Op[Any]:
    """Send ``call`` until it succeeds or may not be tried again (``_retry.py``): a successful
    ``httpx.Response`` (an ``Opened`` one when ``stream``), else a typed error raised."""
    retry = 0
    while True:
        try:
            answer = yield Send(call, stream)
        except httpx.TransportError as exc:
            delay = policy.after_error(retry, exc, idempotent=call.idempotent)
            if delay is None:
                raise _connection_error(call, exc) from exc
        else:
            response = answer.response if stream else answer
            if response.is_success:
                return answer
            if stream:
                with contextlib.suppress(httpx.TransportError):  # the status alone says enough
                    yield ReadBody(answer)
                yield Close(answer)
            error = _error_of(response)
            delay = policy.after_status(retry, response.status_code, error.retry_after)
            if delay is None:
                raise error
        yield Sleep(delay)
        retry += 1


def request(call: Call, policy: RetryPolicy) -> Op[dict[str, Any]]:
    """``send``, then the answer's JSON object."""
    response: httpx.Response = yield from send(call, policy)
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UnexpectedResponseError(
            f"{call.method} {call.path}: the answer is not a JSON object "
            f"(HTTP {response.status_code}, {response.headers.get('content-type')})"
        )
    return body
