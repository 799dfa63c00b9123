"""Routing decisions (docs/operations.md#providers-and-routing): strategies, fallback chains, plans;
pure, no Redis."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from anygate.broker import ClaimedJob
from anygate.broker.deployment_health import HealthView
from anygate.broker.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTransientError,
)
from anygate.broker.routing import (
    DeploymentStats,
    RouteSelector,
    decode_plan,
    encode_plan,
    plan,
    step_from_wire,
)
from anygate.config import ConfigError, Priority, QueueConfig, parse_config
from anygate.workers.failure_policy import Action, decide

CHAT = "/v1/chat/completions"


def config(strategy: str = "ordered", **models: object) -> object:
    return parse_config(
        {
            "providers": {
                "openai": {"kind": "openai"},
                "gemini": {"kind": "gemini"},
                "local": {"kind": "openai_compatible"},
            },
            "models": {
                "fast": {
                    "strategy": strategy,
                    "deployments": [
                        {
                            "provider": "openai",
                            "model": "gpt-4o-mini",
                            "weight": 3,
                            "input_price_per_m": 0.15,
                            "output_price_per_m": 0.6,
                        },
                        {
                            "provider": "gemini",
                            "model": "gemini-2.5-flash",
                            "weight": 1,
                            "input_price_per_m": 0.3,
                            "output_price_per_m": 2.5,
                        },
                        {"provider": "local", "model": "llama", "weight": 1},
                    ],
                    "fallbacks": ["backup"],
                },
                "backup": {
                    "deployments": [{"provider": "gemini", "model": "gemini-2.0"}],
                    "fallbacks": ["fast"],
                },
                "emb": {
                    "kind": "embedding",
                    "deployments": [{"provider": "openai", "model": "e-3"}],
                },
                **models,
            },
        }
    )


def providers(cfg: object, stats: dict[str, DeploymentStats] | None = None) -> list[str]:
    steps = plan(cfg, CHAT, "fast", RouteSelector(), stats or {})  # type: ignore[arg-type]
    return [s.provider for s in steps]


class TestStrategies:
    def test_ordered_keeps_the_listed_order_then_fallbacks(self) -> None:
        assert providers(config("ordered")) == ["openai", "gemini", "local", "gemini"]

    def test_unhealthy_deployments_go_last_within_their_alias(self) -> None:
        view = HealthView(clock=lambda: 100.0)
        view.apply("openai:gpt-4o-mini cool 2000")
        view.apply("local:llama open 5000")
        steps = plan(config(), CHAT, "fast", RouteSelector(), {}, healthy=view.healthy)  # type: ignore[arg-type]
        assert [s.provider for s in steps] == ["gemini", "openai", "local", "gemini"]

    def test_a_breaker_awaiting_its_probe_keeps_its_place(self) -> None:
        now = [100.0]
        view = HealthView(clock=lambda: now[0])
        view.apply("openai:gpt-4o-mini open 1000")
        assert not view.healthy("openai:gpt-4o-mini")
        now[0] = 101.5  # the cool-down is over: the next job may be its probe
        steps = plan(config(), CHAT, "fast", RouteSelector(), {}, healthy=view.healthy)  # type: ignore[arg-type]
        assert steps[0].provider == "openai"

    def test_fallback_cycles_are_visited_once(self) -> None:
        steps = plan(config(), CHAT, "backup", RouteSelector(), {})  # type: ignore[arg-type]
        assert [s.alias for s in steps] == ["backup", "fast", "fast", "fast"]

    def test_weighted_round_robin_follows_the_weights(self) -> None:
        cfg = config("weighted")
        selector = RouteSelector()
        firsts = Counter(
            plan(cfg, CHAT, "fast", selector, {})[0].provider
            for _ in range(50)  # type: ignore[arg-type]
        )
        assert firsts == {"openai": 30, "gemini": 10, "local": 10}

    def test_weighted_keeps_the_others_as_fallbacks(self) -> None:
        steps = plan(config("weighted"), CHAT, "fast", RouteSelector(), {})  # type: ignore[arg-type]
        assert sorted(s.provider for s in steps[:3]) == ["gemini", "local", "openai"]

    def test_least_busy_prefers_fewest_in_flight(self) -> None:
        stats = {
            "openai:gpt-4o-mini": DeploymentStats(in_flight=9),
            "gemini:gemini-2.5-flash": DeploymentStats(in_flight=2),
            "local:llama": DeploymentStats(in_flight=5),
        }
        assert providers(config("least_busy"), stats)[:3] == ["gemini", "local", "openai"]

    def test_lowest_latency_tries_unmeasured_first_then_fastest(self) -> None:
        stats = {
            "openai:gpt-4o-mini": DeploymentStats(latency_ms=300.0),
            "gemini:gemini-2.5-flash": DeploymentStats(latency_ms=120.0),
        }
        assert providers(config("lowest_latency"), stats)[:3] == ["local", "gemini", "openai"]

    def test_lowest_cost_orders_by_price(self) -> None:
        assert providers(config("lowest_cost"))[:3] == ["local", "openai", "gemini"]


class TestPlanErrors:
    def test_unknown_model_is_model_not_found(self) -> None:
        with pytest.raises(ModelNotFoundError):
            plan(config(), CHAT, "nope", RouteSelector(), {})  # type: ignore[arg-type]

    def test_wrong_kind_is_invalid(self) -> None:
        with pytest.raises(InvalidRequestError):
            plan(config(), CHAT, "emb", RouteSelector(), {})  # type: ignore[arg-type]

    def test_fallback_of_another_kind_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="fallbacks"):
            config(
                mixed={"deployments": [{"provider": "openai", "model": "x"}], "fallbacks": ["emb"]}
            )


class TestPlanWire:
    def test_plan_round_trips_through_its_compact_form(self) -> None:
        cfg = config()
        steps = plan(cfg, CHAT, "fast", RouteSelector(), {})  # type: ignore[arg-type]
        wire = encode_plan(steps, alias="fast")
        assert [step_from_wire(cfg, w) for w in decode_plan(wire)] == steps  # type: ignore[arg-type]

    def test_the_common_one_deployment_plan_is_not_stored(self) -> None:
        cfg = parse_config(
            {
                "providers": {"openai": {"kind": "openai"}},
                "models": {
                    "gpt-4o-mini": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}
                },
            }
        )
        steps = plan(cfg, CHAT, "gpt-4o-mini", RouteSelector(), {})
        assert encode_plan(steps, alias="gpt-4o-mini") == ""

    def test_a_step_removed_from_config_resolves_to_none(self) -> None:
        assert step_from_wire(config(), ["fast", "openai", "gone"]) is None  # type: ignore[arg-type]


def job(attempt: int, step: int = 0, step_at: int = 1) -> ClaimedJob:
    return ClaimedJob(
        "job_x",
        attempt,
        "t",
        CHAT,
        "fast",
        b"{}",
        Priority.INTERACTIVE,
        True,
        plan="p",
        step=step,
        step_started_attempt=step_at,
    )


QUEUE = QueueConfig(attempts_per_deployment=2, retry_base_delay_s=0.1, retry_max_delay_s=1)


class TestFailurePolicy:
    def test_rate_limit_cools_down_for_retry_after(self) -> None:
        d = decide(UpstreamRateLimitedError("slow", retry_after=7), job(1), 3, QUEUE)
        assert (d.action, d.delay_s) == (Action.COOL_DOWN, 7)

    def test_transient_retries_the_same_deployment_first(self) -> None:
        d = decide(UpstreamTransientError("500"), job(1), 3, QUEUE)
        assert d.action is Action.RETRY
        assert 0 <= d.delay_s <= 1

    def test_transient_falls_back_after_attempts_per_deployment(self) -> None:
        d = decide(UpstreamTransientError("500"), job(2), 3, QUEUE)
        assert (d.action, d.next_step) == (Action.FALL_BACK, 1)

    def test_attempts_count_from_the_start_of_the_step(self) -> None:
        assert decide(UpstreamTransientError("x"), job(3, 1, 3), 3, QUEUE).action is Action.RETRY

    def test_last_step_exhausted_fails(self) -> None:
        assert decide(UpstreamTransientError("x"), job(6, 2, 5), 3, QUEUE).action is Action.FAIL

    def test_rejected_fails_at_once_without_fallback(self) -> None:
        assert decide(UpstreamRejectedError("bad"), job(1), 3, QUEUE).action is Action.FAIL

    def test_a_429_beyond_the_cool_down_budget_moves_to_the_next_step(self) -> None:
        many = dataclasses.replace(job(1), cooled=QUEUE.max_cool_downs)
        d = decide(UpstreamRateLimitedError("slow", retry_after=7), many, 3, QUEUE)
        assert (d.action, d.next_step) == (Action.FALL_BACK, 1)

    def test_a_429_never_fails_a_job_even_at_its_last_step(self) -> None:
        """A storm that outlasts every cool-down budget leaves the job waiting (its deadline
        bounds the wait); failing it would be the storm's doing, not the job's."""
        last = dataclasses.replace(job(9, 2, 1), cooled=QUEUE.max_cool_downs + 50)
        d = decide(UpstreamRateLimitedError("slow", retry_after=3), last, 3, QUEUE)
        assert (d.action, d.delay_s) == (Action.COOL_DOWN, 3)

    def test_an_account_out_of_credit_falls_back_at_once_or_fails(self) -> None:
        broke = UpstreamRateLimitedError("no credit", code="insufficient_quota")
        assert (decide(broke, job(1), 3, QUEUE).action) is Action.FALL_BACK
        assert decide(broke, job(1, 2), 3, QUEUE).action is Action.FAIL
