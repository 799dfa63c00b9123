"""Fault rules and the choice of which fault, if any, hits a request.

Kept free of I/O so selection can be tested with a fixed random source; the app decides how to
act out the chosen fault on the wire.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from anygate.ops.mock_provider.settings import FaultKind

DEFAULT_AFTER_CHUNKS = 1
DEFAULT_RETRY_AFTER = 1.0


class FaultRule(BaseModel):
    """One rule as posted to `/_mock/faults`; `times` counts down as requests consume it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fault: FaultKind
    retry_after: float | None = Field(default=None, ge=0)
    model: str | None = None
    path_contains: str | None = None
    times: int | None = Field(default=None, ge=1)
    after_chunks: int | None = Field(default=None, ge=0)
    code: Literal["insufficient_quota"] | None = None
    """A 429 that means "no credit left" rather than "slow down" (OpenAI's wire only)."""

    @property
    def status(self) -> int | None:
        """The HTTP status for error faults; None for faults acted out on the connection."""
        return int(self.fault) if self.fault.isdigit() else None

    @property
    def chunks_before_fault(self) -> int:
        """Drop and malformed default to one good chunk first, so the failure is mid-stream."""
        return DEFAULT_AFTER_CHUNKS if self.after_chunks is None else self.after_chunks

    @property
    def retry_after_seconds(self) -> float:
        return DEFAULT_RETRY_AFTER if self.retry_after is None else self.retry_after

    def matches(self, *, model: str | None, path: str) -> bool:
        if self.model is not None and self.model != model:
            return False
        return self.path_contains is None or self.path_contains in path


_RULES = TypeAdapter(list[FaultRule])
R = TypeVar("R", bound=BaseModel)


def parse_rule_list(rules: TypeAdapter[list[R]], payload: Any, what: str) -> list[R]:
    """A list of rules, or a single rule, of any kind; a ValueError naming the bad field."""
    if isinstance(payload, dict):
        payload = [payload]
    try:
        return rules.validate_python(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ValueError(f"invalid {what} at {where}: {first['msg']}") from None


def parse_rules(payload: Any) -> list[FaultRule]:
    return parse_rule_list(_RULES, payload, "fault rule")


class FaultBook:
    """The active rules, consumed in order: the first matching rule wins and spends one use.

    A lock keeps a `times`-limited rule from being spent twice if the app is ever served from
    several threads; under one event loop it is uncontended.
    """

    def __init__(self, rng: Callable[[], float] = random.random) -> None:
        self._rng = rng
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rules: Sequence[FaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def select(
        self, *, model: str | None, path: str, fault_rate: float, fault: FaultKind
    ) -> FaultRule | None:
        """The fault for this request: a matching rule first, else the global random rate."""
        if self._rules:
            with self._lock:
                for index, rule in enumerate(self._rules):
                    if not rule.matches(model=model, path=path):
                        continue
                    if rule.times is not None:
                        if rule.times == 1:
                            del self._rules[index]
                        else:
                            self._rules[index] = rule.model_copy(update={"times": rule.times - 1})
                    return rule
        if fault_rate > 0 and self._rng() < fault_rate:
            return FaultRule(fault=fault)
        return None
