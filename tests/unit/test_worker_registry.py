"""The worker registry's value: what a worker's heartbeat writes, the admin API and the planner
read back (``broker/worker_registry.py``)."""

from __future__ import annotations

import re

from anygate.broker.worker_registry import (
    DeploymentFigures,
    RegistryValue,
    decode_registry_value,
    encode_registry_value,
    summed_stats,
)

VALUE = RegistryValue(
    1700000000000,
    8,
    3,
    {"openai:gpt-4o-mini": DeploymentFigures(2, 812.5), "gemini:flash": DeploymentFigures(1)},
)


class TestRegistryValue:
    def test_a_value_reads_back_as_written(self) -> None:
        assert decode_registry_value(encode_registry_value(VALUE)) == VALUE

    def test_the_layout_the_scripts_read(self) -> None:
        """enqueue-2.lua reads the concurrency and reclaim-6.lua the heartbeat from the head of
        the value; the JSON holds no space, so it is one field."""
        text = encode_registry_value(VALUE)
        assert text == (
            '1700000000000 8 3 {"openai:gpt-4o-mini":[2,812.5],"gemini:flash":[1,null]}'
        )
        head = re.match(r"^(\d+) (\d+)", text)
        assert head is not None
        assert head.groups() == ("1700000000000", "8")

    def test_a_value_without_figures_reads(self) -> None:
        assert decode_registry_value("5 2 1") == RegistryValue(5, 2, 1)

    def test_unreadable_figures_leave_the_worker_listed(self) -> None:
        found = decode_registry_value('5 2 1 {"a": {"p": 1}, "b": [1, "x"], "c": [4, 9]}')
        assert found == RegistryValue(5, 2, 1, {"c": DeploymentFigures(4, 9)})
        assert decode_registry_value("5 2 1 not-json") == RegistryValue(5, 2, 1)

    def test_an_unreadable_head_is_no_value(self) -> None:
        assert decode_registry_value("garbage") is None
        assert decode_registry_value("5 2") is None


class TestSummedStats:
    def test_in_flight_adds_up_and_latency_averages_over_those_that_know_it(self) -> None:
        other = RegistryValue(0, 4, 1, {"openai:gpt-4o-mini": DeploymentFigures(1, 187.5)})
        third = RegistryValue(0, 4, 0, {"openai:gpt-4o-mini": DeploymentFigures(0)})
        stats = summed_stats([VALUE, other, third])
        assert stats["openai:gpt-4o-mini"].in_flight == 3
        assert stats["openai:gpt-4o-mini"].latency_ms == 500.0
        assert stats["gemini:flash"].latency_ms is None
