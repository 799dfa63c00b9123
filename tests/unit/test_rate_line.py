"""The rate window's waiting line (``SlidingWindow.wait``, rate_window.py): waiters come back one
room at a time, in order, and each is admitted on its first return, however many wait; the limit
stays exact whoever comes back late, early or never."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from anygate.broker.rate_window import NEVER, SlidingWindow

WINDOW = 1_000


def _fill(window: SlidingWindow, now: int, n: int) -> None:
    for i in range(n):
        assert window.wait(now, f"first{i}", 1).admitted


def test_waiters_are_told_distinct_turns_one_room_each() -> None:
    window = SlidingWindow(WINDOW, 3)
    for i, at in enumerate((0, 100, 200)):
        assert window.wait(at, f"first{i}", 1).admitted
    turns = [window.wait(300, f"w{i}", 1).retry_after_ms for i in range(7)]
    # the three entries free room at 1000, 1100, 1200; the waiters admitted then free theirs a
    # window later, and so on: one waiter per room, in order of arrival
    assert [300 + t for t in turns] == [1000, 1100, 1200, 2000, 2100, 2200, 3000]


def _rounds_per_admission(waiting: int) -> float:
    """Every waiter comes back exactly at its turn: how many calls each admission took."""
    window = SlidingWindow(WINDOW, 5)
    _fill(window, 0, 5)
    due: list[tuple[int, str]] = []
    calls = 0
    for i in range(waiting):
        calls += 1
        answer = window.wait(10, f"w{i}", 1)
        assert not answer.admitted
        due.append((10 + answer.retry_after_ms, f"w{i}"))
    admitted = 0
    while due:
        due.sort()
        at, entry = due.pop(0)
        calls += 1
        answer = window.wait(at, entry, 1)
        if answer.admitted:
            admitted += 1
        else:
            due.append((at + answer.retry_after_ms, entry))
    assert admitted == waiting
    return calls / admitted


def test_an_admission_costs_the_same_whatever_the_number_waiting() -> None:
    assert _rounds_per_admission(10) == 2.0  # refused once, admitted on its first return
    assert _rounds_per_admission(300) == 2.0


def test_a_new_request_does_not_take_the_room_of_a_waiter_whose_turn_came() -> None:
    window = SlidingWindow(WINDOW, 1)
    assert window.wait(0, "a", 1).admitted
    turn = window.wait(10, "b", 1).retry_after_ms
    assert turn == WINDOW - 10
    # b's moment has come but b is not back yet (its worker claims it a little later)
    late = window.wait(WINDOW + 5, "c", 1)
    assert not late.admitted, "c goes behind b"
    assert late.retry_after_ms == WINDOW - 5, "b's room is kept, c's turn is a window after b's"
    assert window.wait(WINDOW + 20, "b", 1).admitted
    # b came 20 ms late, so its room frees 20 ms later than c was told: c keeps the front
    early = window.wait(2 * WINDOW, "c", 1)
    assert (early.admitted, early.retry_after_ms) == (False, 20)
    assert window.wait(2 * WINDOW + 20, "c", 1).admitted


def test_a_waiter_whose_room_was_taken_keeps_the_front() -> None:
    window = SlidingWindow(WINDOW, 1)
    assert window.wait(0, "a", 1).admitted
    b_turn = window.wait(0, "b", 1).retry_after_ms  # at 1000
    c_turn = window.wait(0, "c", 1).retry_after_ms  # at 2000, counting b as admitted at 1000
    assert (b_turn, c_turn) == (1000, 2000)
    assert window.wait(1300, "b", 1).admitted  # b came 300 ms late: room frees at 2300
    early = window.wait(2000, "c", 1)
    assert (early.admitted, early.retry_after_ms) == (False, 300)
    d_turn = window.wait(2001, "d", 1).retry_after_ms
    assert 2001 + d_turn > 2300, "d, new, is still behind c"
    assert window.wait(2300, "c", 1).admitted


def test_a_waiter_that_never_comes_back_leaves_the_line_after_a_window() -> None:
    window = SlidingWindow(WINDOW, 1)
    assert window.wait(0, "a", 1).admitted
    assert window.wait(0, "gone", 1).retry_after_ms == 1000  # then cancelled: never back
    new = window.wait(1500, "new", 1)
    assert (new.admitted, 1500 + new.retry_after_ms) == (False, 2000), "its room is kept"
    assert window.wait(2001, "new", 1).admitted
    assert window.line == {}, "a window after its moment, it is forgotten"
    assert window.wait(3001, "later", 1).admitted, "it holds nobody back"


def test_a_request_larger_than_the_limit_never_waits() -> None:
    window = SlidingWindow(WINDOW, 10)
    assert window.wait(0, "big", 11).retry_after_ms == NEVER
    assert window.line == {}


def test_the_window_answer_is_repeatable() -> None:
    """A call retried after its reply was lost takes nothing twice."""
    window = SlidingWindow(WINDOW, 1)
    assert window.wait(0, "a", 1).admitted
    assert window.wait(5, "a", 1).admitted
    assert window.used == 1


# (gap ms since the previous event, cost, lateness ms of its return or None: it never returns)
events = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=300),
        st.integers(min_value=1, max_value=30),
        st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(min_value=1, max_value=60), steps=events)
def test_no_window_ever_holds_more_than_the_limit_whoever_waits(
    limit: int, steps: list[tuple[int, int, int | None]]
) -> None:
    window = SlidingWindow(WINDOW, limit)
    admitted: list[tuple[int, int]] = []
    pending: list[tuple[int, int, str, int, int | None]] = []  # due, seq, id, cost, lateness
    now, seq = 0, 0

    def ask(at: int, entry: str, cost: int, lateness: int | None) -> None:
        nonlocal seq
        answer = window.wait(at, entry, cost)
        if answer.admitted:
            admitted.append((at, cost))
        elif answer.retry_after_ms != NEVER and lateness is not None:
            seq += 1
            pending.append((at + answer.retry_after_ms + lateness, seq, entry, cost, lateness))

    for i, (gap, cost, lateness) in enumerate(steps):
        now += gap
        while pending and min(pending)[0] <= now:
            pending.sort()
            due, _s, entry, c, late = pending.pop(0)
            ask(due, entry, c, late)
        ask(now, f"r{i}", cost, lateness)
    for _ in range(10_000):
        if not pending:
            break
        pending.sort()
        due, _s, entry, c, late = pending.pop(0)
        ask(due, entry, c, late)
    assert not pending, "every waiter that comes back is admitted in the end"
    for start, _ in admitted:
        assert sum(c for t, c in admitted if start <= t < start + WINDOW) <= limit
