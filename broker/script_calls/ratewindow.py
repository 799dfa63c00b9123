"""``ratewindow-3.lua``: a sliding window shared by every worker (the model: rate_window.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from anygate.broker.keys import KeySpace
from anygate.broker.rate_window import Admission
from anygate.broker.scripts import Arg, Scripts


class RateOp(enum.StrEnum):
    """The script's ``OP`` table."""

    TAKE = "take"
    WAIT = "wait"
    """Take, or join the limit's line (rate_window.py): what workers do."""
    SETTLE = "settle"


@dataclass(frozen=True, slots=True)
class RateWindowKeys:
    log: str
    sum: str
    line: str

    @classmethod
    def of(cls, k: KeySpace, limit_name: str) -> RateWindowKeys:
        return cls(k.rate_log(limit_name), k.rate_sum(limit_name), k.rate_line(limit_name))

    def keys(self) -> list[str]:
        return [self.log, self.sum, self.line]


@dataclass(frozen=True, slots=True)
class RateWindowArgs:
    op: RateOp
    window_ms: int
    limit: int
    """0 for ``SETTLE``, which has none."""
    entry_id: str
    cost: int
    """``TAKE``: the estimate; ``SETTLE``: the real cost."""
    now_ms: int | None = None
    """For tests; otherwise Redis's clock decides, the same for every worker."""

    def argv(self) -> list[Arg]:
        now: Arg = "" if self.now_ms is None else self.now_ms
        return [self.op.value, self.window_ms, self.limit, self.entry_id, self.cost, now]


def decode_take(reply: list[Any]) -> Admission:
    return Admission(reply[0] == 1, int(reply[1]))


async def take(scripts: Scripts, keys: RateWindowKeys, args: RateWindowArgs) -> Admission:
    """The script touches its keys only."""
    return decode_take(await scripts.ratewindow.call(keys, args))


async def settle(scripts: Scripts, keys: RateWindowKeys, args: RateWindowArgs) -> bool:
    """False once the entry has expired."""
    return bool(await scripts.ratewindow.call(keys, args) == 1)
