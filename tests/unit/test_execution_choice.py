"""The choice between a live call and a provider batch, and when a provider batch is given up."""

from __future__ import annotations

import pytest

from anygate.core.execution import (
    PROVIDER_BATCH,
    BatchPolicy,
    Execution,
    JobFacts,
    LiveBecause,
    choose_execution,
    live_cutoff_ms,
)

POLICY = BatchPolicy(min_room_s=3600, live_reserve_s=900)
NOW = 1_800_000_000_000
HOUR_MS = 3_600_000


def facts(**overrides: object) -> JobFacts:
    base: dict[str, object] = {
        "now_ms": NOW,
        "deadline_ms": NOW + 24 * HOUR_MS,
        "stream": False,
        "endpoint": "/v1/chat/completions",
        "deployment_allows": True,
        "tenant_opted_in": True,
    }
    return JobFacts(**{**base, **overrides})  # type: ignore[arg-type]


def test_a_patient_job_on_an_allowed_route_of_an_opted_in_tenant_goes_to_a_provider_batch() -> None:
    assert choose_execution(facts(), POLICY) == PROVIDER_BATCH
    assert choose_execution(facts(endpoint="/v1/embeddings"), POLICY) == PROVIDER_BATCH


@pytest.mark.parametrize(
    ("overrides", "because"),
    [
        ({"stream": True}, LiveBecause.STREAM),
        ({"endpoint": "/v1/responses"}, LiveBecause.ENDPOINT),
        ({"deadline_ms": 0}, LiveBecause.NO_DEADLINE),
        ({"deadline_ms": NOW + HOUR_MS - 1}, LiveBecause.DEADLINE),
        ({"deployment_allows": False}, LiveBecause.DEPLOYMENT),
        ({"tenant_opted_in": False}, LiveBecause.TENANT),
        # the caller's reason is named before the operator's
        ({"stream": True, "tenant_opted_in": False}, LiveBecause.STREAM),
        ({"deadline_ms": NOW + 60_000, "deployment_allows": False}, LiveBecause.DEADLINE),
    ],
)
def test_every_reason_to_go_live_is_named(overrides: dict[str, object], because: str) -> None:
    choice = choose_execution(facts(**overrides), POLICY)
    assert choice.execution is Execution.LIVE
    assert choice.because == because


def test_exactly_the_minimum_room_is_enough() -> None:
    assert choose_execution(facts(deadline_ms=NOW + HOUR_MS), POLICY) == PROVIDER_BATCH


def test_a_job_goes_live_its_reserve_before_its_deadline() -> None:
    assert live_cutoff_ms(NOW + 2 * HOUR_MS, POLICY) == NOW + 2 * HOUR_MS - 900_000


@pytest.mark.parametrize(("room", "reserve"), [(600, 600), (600, 900), (600, -1)])
def test_a_policy_must_leave_room_beyond_its_reserve(room: float, reserve: float) -> None:
    with pytest.raises(ValueError, match="min_room_s"):
        BatchPolicy(min_room_s=room, live_reserve_s=reserve)
