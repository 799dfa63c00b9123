"""Sliding-window rate limits shared by every worker and API process (docs/architecture.md; the
pure model and its reasons: ``rate_window.py``; the script: ``ratewindow-3.lua``)."""

from __future__ import annotations

from anygate.broker.keys import KeySpace
from anygate.broker.rate_window import Admission
from anygate.broker.script_calls.ratewindow import (
    RateOp,
    RateWindowArgs,
    RateWindowKeys,
    settle,
    take,
)
from anygate.broker.scripts import Scripts


class RateWindows:
    def __init__(self, scripts: Scripts, keys: KeySpace) -> None:
        self._scripts = scripts
        self._k = keys

    async def take(
        self,
        limit_name: str,
        window_ms: int,
        limit: int,
        entry_id: str,
        cost: int,
        *,
        now_ms: int | None = None,
    ) -> Admission:
        """Admit ``cost`` against a shared sliding window, or say when it could be. Entry ids
        must be unique within a window (a job id and its attempt). ``now_ms`` is for tests;
        otherwise Redis's clock decides, the same for every worker."""
        args = RateWindowArgs(RateOp.TAKE, window_ms, limit, entry_id, cost, now_ms)
        return await take(self._scripts, RateWindowKeys.of(self._k, limit_name), args)

    async def wait(
        self,
        limit_name: str,
        window_ms: int,
        limit: int,
        entry_id: str,
        cost: int,
        *,
        now_ms: int | None = None,
    ) -> Admission:
        """``take``, or join the limit's line: a refusal's ``retry_after_ms`` is this entry's
        turn, and coming back then with the same entry id keeps its place (``rate_window.py``).
        For requests that come back (a worker's jobs), not for ones answered 429."""
        args = RateWindowArgs(RateOp.WAIT, window_ms, limit, entry_id, cost, now_ms)
        return await take(self._scripts, RateWindowKeys.of(self._k, limit_name), args)

    async def settle(
        self,
        limit_name: str,
        window_ms: int,
        entry_id: str,
        actual_cost: int,
        *,
        now_ms: int | None = None,
    ) -> bool:
        """Replace an admitted estimate by the real cost; False once the entry has expired."""
        args = RateWindowArgs(RateOp.SETTLE, window_ms, 0, entry_id, actual_cost, now_ms)
        return await settle(self._scripts, RateWindowKeys.of(self._k, limit_name), args)
