"""The `/_mock/` control API: faults, run-time settings, the request log, reset and health.

Deliberately unauthenticated: the mock binds to loopback by default and only tests drive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from pydantic import ValidationError

from anygate.ops.mock_provider.batch_jobs import parse_batch_rules
from anygate.ops.mock_provider.batch_store import BatchBook
from anygate.ops.mock_provider.faults import FaultBook, parse_rules
from anygate.ops.mock_provider.rate_limits import RateLimiter
from anygate.ops.mock_provider.request_log import RequestLog
from anygate.ops.mock_provider.settings import MockSettings

PREFIX = "/_mock/"


@dataclass(slots=True)
class MockState:
    """Everything a running mock mutates; `settings` is swapped whole, never edited in place.

    `initial` keeps the settings the mock started with, so a reset returns to them.
    """

    settings: MockSettings
    faults: FaultBook = field(default_factory=FaultBook)
    batches: BatchBook = field(default_factory=BatchBook)
    log: RequestLog = field(init=False)
    limiter: RateLimiter = field(init=False)
    initial: MockSettings = field(init=False)

    def __post_init__(self) -> None:
        self.log = RequestLog(self.settings.request_log_size)
        self.limiter = RateLimiter(self.settings.rate_limits)
        self.initial = self.settings

    def apply(self, settings: MockSettings) -> None:
        """New limits apply to the history already counted: a tighter limit bites at once."""
        self.settings = settings
        self.limiter.limits = settings.rate_limits

    def reset(self) -> None:
        """Back to the start: initial settings, no faults, no history, nothing charged."""
        self.apply(self.initial)
        self.faults.clear()
        self.batches.clear()
        self.log.clear()
        self.limiter.clear()


def _reply(status: int, body: Any) -> tuple[int, bytes]:
    return status, orjson.dumps(body)


def _problem(status: int, message: str) -> tuple[int, bytes]:
    return _reply(status, {"error": {"message": message}})


def _load(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise ValueError("body is not valid JSON") from None


def handle(state: MockState, method: str, path: str, query: bytes, raw: bytes) -> tuple[int, bytes]:
    """Status and JSON body for one control request."""
    resource = path[len(PREFIX) :].rstrip("/")
    try:
        if resource == "health":
            return _reply(200, {"status": "ok"}) if method == "GET" else _not_allowed(method, path)
        if resource == "faults":
            return _faults(state, method, path, raw)
        if resource == "batch_faults":
            return _batch_faults(state, method, path, raw)
        if resource == "settings":
            return _settings(state, method, path, raw)
        if resource == "requests":
            return _requests(state, method, path, query)
        if resource == "reset":
            if method != "POST":
                return _not_allowed(method, path)
            state.reset()
            return _reply(200, state.settings.public_view())
    except ValueError as exc:
        return _problem(400, str(exc))
    return _problem(404, f"no control endpoint {path}")


def _not_allowed(method: str, path: str) -> tuple[int, bytes]:
    return _problem(405, f"{method} is not allowed on {path}")


def _faults(state: MockState, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
    if method == "POST":
        state.faults.add(parse_rules(_load(raw)))
    elif method == "DELETE":
        state.faults.clear()
    elif method != "GET":
        return _not_allowed(method, path)
    rules = [rule.model_dump() for rule in state.faults.rules()]
    return _reply(200, {"data": rules})


def _batch_faults(state: MockState, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
    """Rules that shape provider batches created after them (see `batch_jobs.BatchFaultRule`)."""
    book = state.batches.faults
    if method == "POST":
        book.add(parse_batch_rules(_load(raw)))
    elif method == "DELETE":
        book.clear()
    elif method != "GET":
        return _not_allowed(method, path)
    return _reply(200, {"data": [rule.model_dump() for rule in book.rules()]})


def _settings(state: MockState, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
    if method == "POST":
        changes = _load(raw)
        if not isinstance(changes, dict):
            raise ValueError("settings update must be a JSON object")
        try:
            state.apply(state.settings.updated(changes))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"invalid setting {where}: {first['msg']}") from None
    elif method != "GET":
        return _not_allowed(method, path)
    return _reply(200, state.settings.public_view())


def _requests(state: MockState, method: str, path: str, query: bytes) -> tuple[int, bytes]:
    if method == "DELETE":
        state.log.clear()
        return _reply(200, {"data": []})
    if method != "GET":
        return _not_allowed(method, path)
    values = parse_qs(query.decode("latin-1")).get("limit")
    limit = None
    if values:
        if not values[-1].isdigit():
            raise ValueError("limit must be a non-negative integer")
        limit = int(values[-1])
    return _reply(200, {"data": state.log.entries(limit)})
