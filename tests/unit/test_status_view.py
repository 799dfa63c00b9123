"""What ``anygate status`` draws from the admin API's answers (ops/status_view.py), what
``GET /admin/deployments`` makes of a deployment's health (api/admin_deployments.py), and the
secret references ``config check --resolve`` walks (ops/cli_config.py)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from anygate.api.admin_deployments import (
    configured_deployments,
    deployment_to_api,
    summary_state,
)
from anygate.broker.script_calls.health import BreakerState, HealthPeek
from anygate.config import parse_config
from anygate.ops.cli_config import secret_refs
from anygate.ops.status_view import Snapshot, format_age, render, render_error
from tests.support.configs import config_tree

NOW = 1_800_000_000.0


def drawn(renderable: Any, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def snapshot(**changes: Any) -> Snapshot:
    base: dict[str, Any] = {
        "url": "http://gw",
        "queues": [
            {
                "id": "openai",
                "paused": True,
                "queued": 7,
                "in_flight": 2,
                "delayed": 1,
                "redeliver": 0,
                "dead_letters": 3,
                "lanes": [
                    {"class": "interactive", "tenant": "acme", "depth": 5, "oldest_age_s": 75.0},
                    {"class": "batch", "tenant": "globex", "depth": 2, "oldest_age_s": 0.25},
                ],
            }
        ],
        "workers": [
            {
                "id": "openai",
                "alive": 1,
                "concurrency": 8,
                "workers": [
                    {
                        "id": "w-live",
                        "concurrency": 8,
                        "in_flight": 2,
                        "last_heartbeat": NOW - 1.5,
                        "alive": True,
                    },
                    {
                        "id": "w-dead",
                        "concurrency": 4,
                        "in_flight": 1,
                        "last_heartbeat": NOW - 4000,
                        "alive": False,
                    },
                ],
            }
        ],
        "deployments": [
            {
                "id": "openai:gpt-4o-mini",
                "pool": "openai",
                "aliases": ["fast", "gpt-4o-mini"],
                "state": "open",
                "breaker": "open",
                "breaker_open_for_s": 42.0,
                "cooling_down_for_s": None,
            }
        ],
        "taken_at": NOW,
    }
    return Snapshot(**{**base, **changes})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (-3, "0.0s"),
        (0.25, "0.2s"),
        (9.96, "10.0s"),
        (12.7, "12s"),
        (185, "3m05s"),
        (7260, "2h01m"),
    ],
)
def test_ages_read_at_a_glance(seconds: float | None, text: str) -> None:
    assert format_age(seconds) == text


def row(text: str, *words: str) -> list[str]:
    """The cells of the one line that holds every word."""
    lines = [line for line in text.splitlines() if all(w in line for w in words)]
    assert len(lines) == 1, (words, text)
    return [cell.strip() for cell in lines[0].split("│")[1:-1]]


def test_every_table_shows_its_figures() -> None:
    text = drawn(render(snapshot(), live=True))
    assert "(Ctrl-C to quit)" in text
    assert row(text, "openai", "paused") == [
        "openai",
        "paused",
        "7",
        "2",
        "1",
        "0",
        "3",
        "1/2",
        "2/8",
    ]
    assert row(text, "interactive", "acme") == ["openai", "interactive", "acme", "5", "1m15s"]
    assert row(text, "batch", "globex")[-1] == "0.2s"
    assert row(text, "w-live") == ["openai", "w-live", "1.5s ago", "2/8", "yes"]
    assert row(text, "w-dead")[2:] == ["1h06m ago", "1/4", "no"]
    assert row(text, "gpt-4o-mini", "open") == [
        "openai:gpt-4o-mini",
        "openai",
        "fast, gpt-4o-mini",
        "open",
        "open",
        "42s",
        "-",
    ]
    assert "Ctrl-C" not in drawn(render(snapshot()))


def test_empty_tables_say_so() -> None:
    quiet = snapshot(workers=[{"id": "openai", "alive": 0, "concurrency": 0, "workers": []}])
    quiet.queues[0]["lanes"] = []
    text = drawn(render(quiet))
    assert "no jobs waiting" in text
    assert "no workers registered" in text
    assert "Deployments (breaker disabled)" in drawn(render(snapshot(breaker_enabled=False)))


def test_a_failed_refresh_is_shown_in_place_of_the_tables() -> None:
    text = drawn(render_error("http://gw", "cannot reach the gateway", 2.0))
    assert "cannot refresh: cannot reach the gateway (trying again every 2s)" in text


def peek(state: BreakerState = BreakerState.CLOSED, **changes: Any) -> HealthPeek:
    fields: dict[str, Any] = {
        "state": state,
        "open_ms": 0,
        "cool_ms": 0,
        "dirty": False,
        "settling": False,
    }
    return HealthPeek(**{**fields, **changes})


def test_a_deployments_state_in_one_word() -> None:
    assert summary_state(peek()) == "ok"
    assert summary_state(peek(settling=True)) == "recovering"
    assert summary_state(peek(BreakerState.HALF, settling=True)) == "half_open"
    assert summary_state(peek(BreakerState.OPEN, open_ms=5000)) == "open"
    assert summary_state(peek(BreakerState.OPEN, open_ms=5000, cool_ms=10)) == "cooling_down"


def test_each_deployment_once_with_every_alias_routing_to_it() -> None:
    tree = config_tree("redis://127.0.0.1:9", "tunit")
    tree["models"]["fast"] = {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}
    deployments = configured_deployments(parse_config(tree))
    ids = [d.id for d in deployments]
    assert ids == sorted(set(ids))
    mini = next(d for d in deployments if d.id == "openai:gpt-4o-mini")
    assert mini.aliases == ("fast", "gpt-4o-mini")
    shown = deployment_to_api(mini, peek(BreakerState.OPEN, open_ms=1500, dirty=True))
    assert shown["breaker"] == "open"
    assert shown["breaker_open_for_s"] == 1.5
    assert shown["cooling_down_for_s"] is None
    assert shown["recent_failures"] is True
    assert deployment_to_api(mini, peek(BreakerState.HALF))["breaker"] == "half_open"


def test_secret_references_are_found_with_their_paths() -> None:
    tree = config_tree("redis://127.0.0.1:9", "tunit")
    tree["admin_api_keys"] = ["env:ADMIN_ONE", "file:/run/admin"]
    tree["tenants"][0]["api_keys"] = ["env:ACME_KEY"]
    found = {path: str(ref) for path, ref in secret_refs(parse_config(tree))}
    assert found["admin_api_keys[1]"] == "file:/run/admin"
    assert found["tenants[0].api_keys[0]"] == "env:ACME_KEY"
    assert found["providers.openai.api_key"].startswith("env:")
    assert "providers.gemini.api_key" in found
