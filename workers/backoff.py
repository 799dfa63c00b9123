"""How long a job that failed transiently waits before it is dispatched again.

The delay comes from tenacity's "full jitter" exponential wait (AWS architecture blog), so
retries of many jobs that failed together spread out instead of hitting the provider in step.
The job waits in the queue (a delayed set), not in the worker: its slot is free meanwhile.
"""

from __future__ import annotations

from tenacity import RetryCallState, wait_random_exponential


def retry_delay(attempt: int, *, base_s: float, cap_s: float) -> float:
    """Delay before attempt ``attempt + 1``, after ``attempt`` failed deliveries."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    wait = wait_random_exponential(multiplier=base_s, max=cap_s)
    return float(wait(state))
