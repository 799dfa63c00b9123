"""The dispatch policy of docs/queue-semantics.md#dispatch-order-weights-and-fairness, on the pure
model (the Lua script is held to it elsewhere)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from anygate.broker.scheduling import DispatchModel, TenantRing, estimated_start_ms, pick_class
from anygate.config import Priority

I, S, B = Priority.INTERACTIVE, Priority.STANDARD, Priority.BATCH  # noqa: E741 - the classes read as a table
DEFAULT = {I: 16, S: 4, B: 1}


def _sequence(model: DispatchModel, n: int) -> list[tuple[Priority, str]]:
    out = []
    for _ in range(n):
        got = model.claim()
        assert got is not None
        out.append(got)
    return out


class TestPickClass:
    def test_shares_follow_weights_exactly_over_one_cycle(self) -> None:
        current = dict.fromkeys(DEFAULT, 0)
        picks = Counter(pick_class(current, DEFAULT, {I, S, B}) for _ in range(21 * 50))
        assert picks == {I: 16 * 50, S: 4 * 50, B: 50}

    def test_never_two_non_interactive_in_a_row_while_interactive_waits(self) -> None:
        """docs/queue-semantics.md#dispatch-order-weights-and-fairness: a new interactive job waits
        for at most one free slot."""
        current = dict.fromkeys(DEFAULT, 0)
        picks = [pick_class(current, DEFAULT, {I, S, B}) for _ in range(2100)]
        for a, b in itertools.pairwise(picks):
            assert a is I or b is I

    def test_is_work_conserving(self) -> None:
        current = dict.fromkeys(DEFAULT, 0)
        assert {pick_class(current, DEFAULT, {B}) for _ in range(10)} == {B}

    def test_idle_class_banks_no_credit(self) -> None:
        """Batch ran alone for a long time; when interactive arrives it is served at once."""
        current = dict.fromkeys(DEFAULT, 0)
        for _ in range(1000):
            pick_class(current, DEFAULT, {B})
        assert pick_class(current, DEFAULT, {I, B}) is I

    def test_nothing_eligible_picks_nothing(self) -> None:
        assert pick_class(dict.fromkeys(DEFAULT, 0), DEFAULT, set()) is None

    @pytest.mark.parametrize(
        ("weights"), [{I: 1, S: 1, B: 1}, {I: 3, S: 2, B: 1}, {I: 50, S: 7, B: 2}]
    )
    def test_any_weights_give_proportional_shares(self, weights: dict[Priority, int]) -> None:
        current = dict.fromkeys(weights, 0)
        cycle = sum(weights.values())
        picks = Counter(pick_class(current, weights, {I, S, B}) for _ in range(cycle * 20))
        assert picks == {c: w * 20 for c, w in weights.items()}


class TestTenantRing:
    def test_round_robin_between_equal_tenants(self) -> None:
        ring = TenantRing()
        for _ in range(3):
            ring.add("a", 1)
            ring.add("b", 1)
        assert [ring.take({}) for _ in range(6)] == ["a", "b"] * 3

    def test_newcomer_waits_at_most_one_round(self) -> None:
        """Tenant A queued 10,000 jobs; B's single job is served within N = 2 picks."""
        ring = TenantRing()
        for _ in range(10_000):
            ring.add("a", 1)
        ring.take({})
        ring.add("b", 1)
        assert "b" in [ring.take({}) for _ in range(2)]

    def test_weight_gives_consecutive_turns(self) -> None:
        ring = TenantRing()
        for _ in range(9):
            ring.add("heavy", 3)
            ring.add("light", 1)
        got = [ring.take({"heavy": 3, "light": 1}) for _ in range(8)]
        assert got == ["heavy"] * 3 + ["light"] + ["heavy"] * 3 + ["light"]

    def test_drained_tenant_leaves_the_ring(self) -> None:
        ring = TenantRing()
        ring.add("a", 1)
        assert ring.take({}) == "a"
        assert ring.take({}) is None
        assert not ring.order


class TestDispatchModel:
    def test_interactive_jumps_ahead_of_a_batch_backlog(self) -> None:
        model = DispatchModel(DEFAULT)
        for _ in range(1000):
            model.enqueue(B, "bulk")
        model.claim()
        model.enqueue(I, "chat")
        assert model.claim() == (I, "chat")

    def test_classes_and_tenants_compose(self) -> None:
        model = DispatchModel(DEFAULT)
        for t in ("a", "b"):
            for _ in range(100):
                model.enqueue(S, t)
                model.enqueue(B, t)
        seq = _sequence(model, 50)
        standard = [t for c, t in seq if c is S]
        assert standard[:8] == ["a", "b"] * 4
        assert Counter(c for c, _ in seq)[S] >= 40


class TestEstimatedStart:
    def test_rounds_of_slots_ahead_times_the_mean_service_time(self) -> None:
        assert estimated_start_ms(1, 1, 4, 100, 1_000) == 1_000
        assert estimated_start_ms(9, 9, 4, 100, 1_000) == 1_200
        assert estimated_start_ms(1, 9, 4, 100, 1_000) == 1_200, "the pool's queue bounds it"

    def test_unknown_without_workers_or_history(self) -> None:
        assert estimated_start_ms(3, 3, 0, 100, 1_000) is None
        assert estimated_start_ms(3, 3, 4, None, 1_000) is None
