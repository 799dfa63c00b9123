"""The sliding-window model: never more than the limit in any window, and retry hints that are
exact (docs/queue-semantics.md#provider-rate-limits: "the upstream never sees more than its
configured limit in any window")."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from anygate.broker.rate_window import NEVER, SlidingWindow

WINDOW = 1_000

requests = st.lists(
    st.tuples(st.integers(min_value=0, max_value=400), st.integers(min_value=1, max_value=40)),
    min_size=1,
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(min_value=1, max_value=100), steps=requests)
def test_no_window_ever_holds_more_than_the_limit(limit: int, steps: list[tuple[int, int]]) -> None:
    window = SlidingWindow(WINDOW, limit)
    now, admitted = 0, []
    for i, (gap, cost) in enumerate(steps):
        now += gap
        if window.admit(now, f"r{i}", cost).admitted:
            admitted.append((now, cost))
    # Every window [start, start + WINDOW) that begins at an admission is the worst case.
    for start, _ in admitted:
        inside = sum(c for t, c in admitted if start <= t < start + WINDOW)
        assert inside <= limit


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(min_value=1, max_value=100), steps=requests)
def test_a_refusal_says_exactly_when_the_request_fits(
    limit: int, steps: list[tuple[int, int]]
) -> None:
    window = SlidingWindow(WINDOW, limit)
    now = 0
    for i, (gap, cost) in enumerate(steps):
        now += gap
        answer = window.admit(now, f"r{i}", cost)
        if answer.admitted:
            continue
        if cost > limit:
            assert answer.retry_after_ms == NEVER
            continue
        assert answer.retry_after_ms > 0
        early = SlidingWindow(WINDOW, limit, window._entries.copy(), window.used)
        assert not early.admit(now + answer.retry_after_ms - 1, "probe", cost).admitted
        on_time = SlidingWindow(WINDOW, limit, window._entries.copy(), window.used)
        assert on_time.admit(now + answer.retry_after_ms, "probe", cost).admitted


def test_settling_an_estimate_frees_or_takes_room() -> None:
    window = SlidingWindow(WINDOW, 100)
    assert window.admit(0, "a", 80).admitted
    assert not window.admit(1, "b", 40).admitted
    window.settle("a", 50)  # the answer used fewer tokens than estimated
    assert window.admit(2, "b", 40).admitted
    window.settle("b", 60)  # and this one more: nothing fits until "a" expires
    assert window.used == 110
    assert not window.admit(3, "c", 1).admitted
    assert window.admit(WINDOW, "c", 1).admitted  # "a" (admitted at 0) no longer counts
