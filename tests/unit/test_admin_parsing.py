"""How the admin API reads what the scripts wrote, and the rules it applies, without Redis."""

from __future__ import annotations

from datetime import date

import pytest

from anygate.api.admin import key_scopes
from anygate.broker.admin_queries import (
    days_between,
    parse_lane_key,
    parse_registry_value,
    usage_rows,
)
from anygate.broker.dead_letters import requeue_refusal
from anygate.broker.errors import InvalidRequestError
from anygate.broker.tenants import TenantRecord
from anygate.config import Priority

PREFIX = "ag:{main}:"
DAY = date(2026, 3, 1)


class TestUsageRows:
    def test_one_row_per_model_next_to_the_days_totals(self) -> None:
        fields = {
            "requests": "3",
            "tokens": "60",
            "cost_usd": "0.5",
            "gpt-4o-mini:requests": "2",
            "gpt-4o-mini:prompt_tokens": "20",
            "gpt-4o-mini:completion_tokens": "10",
            "gpt-4o-mini:cost_usd": "0.4",
            "ollama:llama3:requests": "1",
            "ollama:llama3:prompt_tokens": "25",
            "ollama:llama3:completion_tokens": "5",
        }
        rows = usage_rows("acme", DAY, fields)
        assert [(r.model, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
            ("gpt-4o-mini", 2, 20, 10),
            ("ollama:llama3", 1, 25, 5),
        ]
        assert rows[0].cost_usd == pytest.approx(0.4)
        assert rows[1].cost_usd == 0.0, "a free model has no cost field"
        assert rows[1].to_api()["total_tokens"] == 30
        assert rows[1].to_api()["date"] == "2026-03-01"

    def test_an_empty_day_has_no_rows(self) -> None:
        assert usage_rows("acme", DAY, {}) == []

    def test_days_between_includes_both_ends(self) -> None:
        assert days_between(DAY, DAY) == [DAY]
        assert len(days_between(date(2024, 1, 1), date(2024, 12, 31))) == 366


class TestLaneKeys:
    def test_a_lane_key_names_pool_class_and_tenant(self) -> None:
        lane = parse_lane_key(PREFIX, f"{PREFIX}lane:openai:batch:acme-1")
        assert lane is not None
        assert (lane.pool, lane.priority, lane.tenant) == ("openai", Priority.BATCH, "acme-1")

    @pytest.mark.parametrize(
        "key",
        [f"{PREFIX}lane:openai:urgent:acme", f"{PREFIX}lane:openai:acme", "ag:{other}:lane:a:b:c"],
    )
    def test_anything_else_is_not_a_lane(self, key: str) -> None:
        assert parse_lane_key(PREFIX, key) is None


class TestWorkerRegistry:
    def test_the_value_a_heartbeat_writes(self) -> None:
        entry = parse_registry_value("w1", '1700000000000 8 3 {"gpt-4o-mini": {"p": 1}}')
        assert entry is not None
        assert (entry.heartbeat_ms, entry.concurrency, entry.in_flight) == (1700000000000, 8, 3)
        shown = entry.to_api(now_ms=1700000001000, alive_within_ms=1500)
        assert shown["alive"] is True
        assert shown["last_heartbeat"] == 1700000000.0
        assert entry.to_api(now_ms=1700000002000, alive_within_ms=1500)["alive"] is False

    def test_an_unreadable_value_is_skipped(self) -> None:
        assert parse_registry_value("w1", "garbage") is None


class TestRules:
    def test_operator_keys_have_the_admin_scope_only(self) -> None:
        assert key_scopes(None, None) == ("admin",)
        assert key_scopes(None, ("admin", "admin")) == ("admin",)
        with pytest.raises(InvalidRequestError):
            key_scopes(None, ("admin", "jobs"))

    def test_tenant_keys_never_have_the_admin_scope(self) -> None:
        assert key_scopes("acme", None) == ("inference", "jobs", "batches")
        assert key_scopes("acme", ("jobs", "jobs")) == ("jobs",)
        with pytest.raises(InvalidRequestError) as raised:
            key_scopes("acme", ("jobs", "admin"))
        assert raised.value.param == "scopes"

    def test_which_dead_letters_stay_dead(self) -> None:
        def tenant(mode: str) -> TenantRecord:
            return TenantRecord.model_validate(
                {"id": "acme", "created_at": 0, "updated_at": 0, "auth_mode": mode}
            )

        assert requeue_refusal(tenant("gateway")) is None
        assert requeue_refusal(None) == "tenant_deleted"
        assert requeue_refusal(tenant("passthrough")) == "client_key_gone"
        assert requeue_refusal(tenant("hybrid")) == "client_key_gone"
