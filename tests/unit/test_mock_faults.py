"""Fault rule parsing and selection, with a fixed random source."""

from __future__ import annotations

import pytest

from anygate.ops.mock_provider.faults import FaultBook, FaultRule, parse_rules


def book(*rules: FaultRule, rng_value: float = 0.99) -> FaultBook:
    faults = FaultBook(rng=lambda: rng_value)
    faults.add(rules)
    return faults


def pick(
    faults: FaultBook,
    model: str | None = "m",
    path: str = "/v1/chat/completions",
    fault_rate: float = 0.0,
) -> FaultRule | None:
    return faults.select(model=model, path=path, fault_rate=fault_rate, fault="503")


def test_parse_rules_accepts_a_single_rule_object() -> None:
    assert parse_rules({"fault": "429", "retry_after": 2}) == [
        FaultRule(fault="429", retry_after=2)
    ]


def test_parse_rules_rejects_unknown_fault_kinds() -> None:
    with pytest.raises(ValueError, match="fault"):
        parse_rules([{"fault": "teapot"}])


def test_parse_rules_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="colour"):
        parse_rules([{"fault": "500", "colour": "red"}])


def test_parse_rules_rejects_zero_times() -> None:
    with pytest.raises(ValueError, match="times"):
        parse_rules([{"fault": "500", "times": 0}])


def test_status_is_numeric_for_error_faults_only() -> None:
    assert [FaultRule(fault=kind).status for kind in ("429", "hang")] == [429, None]


def test_stream_faults_default_to_one_chunk_first() -> None:
    assert FaultRule(fault="drop").chunks_before_fault == 1


def test_no_rules_and_no_rate_selects_nothing() -> None:
    assert pick(book()) is None


def test_first_matching_rule_wins() -> None:
    first, second = FaultRule(fault="500"), FaultRule(fault="429")

    assert pick(book(first, second)) == first


def test_model_filter_skips_other_models() -> None:
    rule = FaultRule(fault="500", model="gpt-4o")

    assert (pick(book(rule), model="gpt-4o-mini"), pick(book(rule), model="gpt-4o")) == (None, rule)


def test_path_filter_matches_substrings() -> None:
    rule = FaultRule(fault="500", path_contains="embed")

    assert pick(book(rule), path="/v1/chat/completions") is None
    assert pick(book(rule), path="/v1/embeddings") == rule


def test_times_limits_how_often_a_rule_fires() -> None:
    faults = book(FaultRule(fault="500", times=2))

    fired = [pick(faults) is not None for _ in range(3)]

    assert fired == [True, True, False]
    assert faults.rules() == []


def test_times_counts_down_visibly() -> None:
    faults = book(FaultRule(fault="500", times=3))

    pick(faults)

    assert faults.rules()[0].times == 2


def test_rules_without_times_fire_every_time() -> None:
    faults = book(FaultRule(fault="500"))

    assert all(pick(faults) is not None for _ in range(5))


def test_exhausted_rule_falls_through_to_the_next() -> None:
    once, always = FaultRule(fault="429", times=1), FaultRule(fault="500")
    faults = book(once, always)

    assert [pick(faults), pick(faults)] == [once, always]


def test_random_rate_injects_the_configured_fault_below_the_rate() -> None:
    rule = pick(book(rng_value=0.1), fault_rate=0.5)

    assert rule == FaultRule(fault="503")


def test_random_rate_spares_requests_at_or_above_the_rate() -> None:
    assert pick(book(rng_value=0.5), fault_rate=0.5) is None


def test_rules_take_precedence_over_the_random_rate() -> None:
    rule = FaultRule(fault="hang")

    assert pick(book(rule, rng_value=0.0), fault_rate=1.0) == rule


def test_clear_removes_all_rules() -> None:
    faults = book(FaultRule(fault="500"))

    faults.clear()

    assert pick(faults) is None
