"""Config reload: what changed, what needs a restart, and how a reload ends (applied, refused,
unchanged) with the old config kept whenever it is not applied."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from prometheus_client import REGISTRY

from anygate.broker.models import ClaimedJob
from anygate.config import AnygateConfig, Priority, SecretRef, parse_config
from anygate.config.reload import (
    RESTART_ONLY,
    ConfigState,
    Problem,
    ReloadPlan,
    config_hash,
    format_path,
    plan_reload,
    secret_problems,
    worker_problems,
)
from anygate.config.reloader import (
    ConfigReloader,
    Outcome,
    ReloadRefusedError,
    catch_early_sighup,
)
from anygate.telemetry import record_config
from anygate.workers import worker_config
from anygate.workers.worker_config import RouteMemory

BASE: dict[str, Any] = {
    "redis": {"url": "redis://127.0.0.1:6379/0", "namespace": "main"},
    "providers": {
        "openai": {"kind": "openai", "api_key": "env:RELOAD_TEST_KEY"},
        "gemini": {"kind": "gemini", "api_key": "env:RELOAD_TEST_KEY"},
    },
    "models": {
        "gpt-4o-mini": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]},
        "gemini-2.5-flash": {"deployments": [{"provider": "gemini", "model": "gemini-2.5-flash"}]},
    },
    "pools": {"openai": {"concurrency": 8}},
}


def tree(**changes: Any) -> dict[str, Any]:
    """BASE with dotted-path changes applied: ``tree(**{"pools.openai.concurrency": 4})``."""
    out = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = out
        *parents, last = dotted.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def cfg(**changes: Any) -> AnygateConfig:
    return parse_config(tree(**changes))


def fields(plan: ReloadPlan) -> list[str]:
    return [format_path(p) for p in plan.changed]


# --- the pure diff ------------------------------------------------------------------------------


def test_same_config_is_unchanged() -> None:
    plan = plan_reload(cfg(), cfg())
    assert plan.unchanged
    assert plan.restart_required == ()


def test_a_route_change_is_live_and_named_by_its_path() -> None:
    new = cfg(
        **{"models/gemini-2.5-flash": {"deployments": [{"provider": "gemini", "model": "x"}]}}
    )
    plan = plan_reload(cfg(), new)
    # an alias with a dot stays one segment
    assert fields(plan) == ["models.gemini-2.5-flash.deployments[0].model"]
    assert plan.sections == ("models",)
    assert plan.restart_required == ()


def test_added_and_removed_models_and_prices_are_live() -> None:
    models = copy.deepcopy(BASE["models"])
    models["new-model"] = {"deployments": [{"provider": "openai", "model": "m2"}]}
    models["gpt-4o-mini"]["deployments"][0]["input_price_per_m"] = 0.5
    del models["gemini-2.5-flash"]
    plan = plan_reload(cfg(), cfg(models=models))
    changed = fields(plan)
    assert "models.new-model.deployments[0].model" in changed
    assert "models.gpt-4o-mini.deployments[0].input_price_per_m" in changed
    assert "models.gemini-2.5-flash.deployments[0].model" in changed  # removed
    assert plan.restart_required == ()
    # what the log line says: whole entries once, changed fields by their path
    assert set(plan.changed_fields()) == {
        "models.new-model (added)",
        "models.gpt-4o-mini.deployments[0].input_price_per_m",
        "models.gemini-2.5-flash (removed)",
    }


def test_pool_concurrency_and_provider_settings_are_live() -> None:
    new = cfg(**{"pools/openai/concurrency": 2, "providers/openai/timeout_s": 30.0})
    plan = plan_reload(cfg(), new)
    assert set(fields(plan)) == {"pools.openai.concurrency", "providers.openai.timeout_s"}
    assert plan.restart_required == ()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"redis/url": "redis://10.0.0.1:6379/0"}, "redis.url"),
        ({"redis/namespace": "other"}, "redis.namespace"),
        ({"server/port": 9000}, "server.port"),
        ({"server/host": "0.0.0.0"}, "server.host"),
        ({"log_level": "debug"}, "log_level"),
        ({"metrics/enabled": False}, "metrics.enabled"),
        ({"queue/rate_limit_window_s": 2.0}, "queue.rate_limit_window_s"),
        ({"security/encryption_key": "env:RELOAD_TEST_ENC"}, "security.encryption_key"),
        ({"server/console/enabled": False}, "server.console.enabled"),
    ],
)
def test_restart_only_changes_are_named(change: dict[str, Any], field: str) -> None:
    plan = plan_reload(cfg(), cfg(**change))
    assert [p.field for p in plan.restart_required] == [field]
    assert plan.restart_required[0].message.startswith("needs a restart: ")


def test_console_sessions_settings_are_live() -> None:
    """Read per request from the gateway's config: a reload applies them at once."""
    plan = plan_reload(cfg(), cfg(**{"server/console/idle_timeout_s": 600}))
    assert plan.restart_required == ()


def test_restart_only_next_to_live_changes_still_refuses() -> None:
    plan = plan_reload(cfg(), cfg(**{"redis/url": "redis://h:1/0", "pools/openai/concurrency": 2}))
    assert [p.field for p in plan.restart_required] == ["redis.url"]


@pytest.mark.parametrize(
    "path",
    [
        ("redis", "sentinel", "hosts", 0),
        ("redis", "mode"),
        ("redis", "tls", "ca_file"),
    ],
)
def test_fields_yet_to_come_under_restart_only_paths_are_restart_only(
    path: tuple[str | int, ...],
) -> None:
    """Matched by prefix, so a field added to ``redis`` needs no change here."""
    assert any(rule.matches(path) for rule in RESTART_ONLY)


def test_a_pool_moved_to_another_shard_needs_a_restart() -> None:
    plan = plan_reload(cfg(), cfg(**{"pools/openai/shard": "elsewhere"}))
    assert [p.field for p in plan.restart_required] == ["pools.openai.shard"]
    assert "drain" in plan.restart_required[0].message


def test_a_pool_added_or_its_concurrency_changed_moves_nothing() -> None:
    plan = plan_reload(cfg(), cfg(**{"pools/openai/concurrency": 3}))
    assert plan.restart_required == ()


def test_live_paths_do_not_match_a_restart_only_rule() -> None:
    for path in [("pools", "openai", "concurrency"), ("models", "redis", "kind"), ("server",)]:
        assert not any(rule.matches(path) for rule in RESTART_ONLY), path


def test_a_worker_refuses_a_config_without_its_pool() -> None:
    providers = {"gemini": BASE["providers"]["gemini"]}
    models = {"gemini-2.5-flash": BASE["models"]["gemini-2.5-flash"]}
    new = cfg(providers=providers, models=models, pools={})
    assert worker_problems(new, "gemini") == []
    [problem] = worker_problems(new, "openai")
    assert problem.field == "providers.openai"
    assert "needs a restart" in problem.message


def test_secret_problems_name_the_field_never_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELOAD_TEST_KEY", "sk-live-very-secret")
    refs = [("a", SecretRef.parse("env:RELOAD_TEST_KEY")), ("b", SecretRef.parse("env:NOPE_X"))]
    [problem] = secret_problems(refs)
    assert problem.field == "b"
    assert "NOPE_X" in problem.message
    assert "sk-live-very-secret" not in problem.message


def test_config_hash_follows_content_only() -> None:
    assert config_hash(cfg()) == config_hash(cfg())
    assert config_hash(cfg()) != config_hash(cfg(**{"pools/openai/concurrency": 2}))
    state = ConfigState(cfg())
    before = state.hash
    state.advance(cfg(**{"pools/openai/concurrency": 2}))
    assert (state.generation, state.hash != before) == (2, True)


# --- the reloader -------------------------------------------------------------------------------


class Harness:
    """A reloader over a real file, recording what it applied and observed."""

    def __init__(self, tmp_path: Path, *, fail_build: bool = False) -> None:
        self.path = tmp_path / "anygate.yaml"
        self.write(tree())
        self.applied: list[AnygateConfig] = []
        self.observed: list[Outcome | None] = []
        self.fail_build = fail_build
        self.state = ConfigState(cfg())
        self.reloader = ConfigReloader(
            self.state,
            self.apply,
            process="test",
            check=lambda new: worker_problems(new, "openai"),
            observe=lambda outcome, _state: self.observed.append(outcome),
            environ={"ANYGATE_CONFIG": str(self.path), "RELOAD_TEST_KEY": "k"},
            debounce_ms=50,
        )

    def write(self, content: dict[str, Any] | str) -> None:
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        self.path.write_text(text, encoding="utf-8")

    async def apply(self, new: AnygateConfig, _plan: ReloadPlan) -> None:
        if self.fail_build:
            raise ReloadRefusedError([Problem("providers.openai.api_key", "not set")])
        self.applied.append(new)


async def test_a_valid_change_is_applied(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.write(tree(**{"pools/openai/concurrency": 3}))
    with structlog.testing.capture_logs() as logs:
        assert await h.reloader.reload() == "applied"
    assert [c.pool("openai").concurrency for c in h.applied] == [3]
    assert h.state.generation == 2
    assert h.state.config.pool("openai").concurrency == 3
    assert h.observed == ["applied"]
    [line] = [e for e in logs if e["event"] == "config reloaded"]
    assert line["changed"] == ["pools.openai.concurrency"]
    assert line["log_level"] == "info"


async def test_unchanged_file_applies_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    assert await h.reloader.reload() == "unchanged"
    assert (h.applied, h.observed, h.state.generation) == ([], [], 1)


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        ("models: [unclosed", "(file)", "not valid YAML"),
        (tree(**{"pools/openai/concurrency": 0}), "pools.openai.concurrency", "greater than"),
        (tree(**{"pools/openai/concurency": 3}), "pools.openai.concurency", "not permitted"),
        (tree(**{"redis/namespace": "other"}), "redis.namespace", "needs a restart"),
        (tree(providers={"gemini": BASE["providers"]["gemini"]}), "(root)", "unknown provider"),
    ],
)
async def test_a_bad_file_is_refused_at_warning_and_the_old_config_kept(
    tmp_path: Path, content: dict[str, Any] | str, field: str, words: str
) -> None:
    h = Harness(tmp_path)
    before = h.state.hash
    h.write(content)
    with structlog.testing.capture_logs() as logs:
        assert await h.reloader.reload() == "refused"
    assert h.applied == []
    assert (h.state.generation, h.state.hash) == (1, before)
    assert h.observed == ["refused"]
    refusals = [e for e in logs if e["event"] == "config reload refused"]
    assert refusals
    assert refusals[0]["field"] == field
    assert words in refusals[0]["problem"]
    assert {e["log_level"] for e in logs} <= {"warning", "info"}  # never error: an operator slip


async def test_a_worker_whose_pool_is_gone_refuses(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    gone = tree(providers={"gemini": BASE["providers"]["gemini"]}, pools={})
    gone["models"] = {"gemini-2.5-flash": BASE["models"]["gemini-2.5-flash"]}
    h.write(gone)
    with structlog.testing.capture_logs() as logs:
        assert await h.reloader.reload() == "refused"
    assert [e["field"] for e in logs if e["event"] == "config reload refused"] == [
        "providers.openai"
    ]


async def test_a_failed_build_keeps_the_old_config(tmp_path: Path) -> None:
    h = Harness(tmp_path, fail_build=True)
    h.write(tree(**{"pools/openai/concurrency": 3}))
    with structlog.testing.capture_logs() as logs:
        assert await h.reloader.reload() == "refused"
    assert h.state.generation == 1
    assert h.state.config.pool("openai").concurrency == 8
    assert [e["field"] for e in logs if e["event"] == "config reload refused"] == [
        "providers.openai.api_key"
    ]


async def test_sighup_and_file_changes_trigger_a_reload(tmp_path: Path) -> None:
    """Both paths in: with ``watch``, a change of the file alone; and a real SIGHUP."""
    h = Harness(tmp_path)
    h.reloader._watch = True  # what --watch-config sets
    h.reloader.start()
    try:
        await asyncio.sleep(0.3)  # the watch is set up
        h.write(tree(**{"pools/openai/concurrency": 5}))
        async with asyncio.timeout(10):
            while h.state.generation < 2:
                await asyncio.sleep(0.05)
        h.write(tree(**{"pools/openai/concurrency": 6}))
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(10):
            while h.state.config.pool("openai").concurrency != 6:
                await asyncio.sleep(0.05)
    finally:
        await h.reloader.stop()
    assert h.observed[0] is None  # the start
    assert "applied" in h.observed


def test_the_reload_series() -> None:
    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    applied = sample("anygate_config_reloads_total", {"outcome": "applied"})
    refused = sample("anygate_config_reloads_total", {"outcome": "refused"})
    state = ConfigState(cfg())
    record_config(None, state)
    old_hash = state.hash
    state.advance(cfg(**{"pools/openai/concurrency": 2}))
    record_config("applied", state)
    record_config("refused", state)
    record_config("unchanged", state)
    assert sample("anygate_config_reloads_total", {"outcome": "applied"}) == applied + 1
    assert sample("anygate_config_reloads_total", {"outcome": "refused"}) == refused + 1
    assert sample("anygate_config_generation") == 2
    assert sample("anygate_config_info", {"hash": state.hash}) == 1
    assert REGISTRY.get_sample_value("anygate_config_info", {"hash": old_hash}) is None


# --- a worker's routes across config generations ------------------------------------------------


def claimed(model: str, plan: str = "", step: int = 0) -> ClaimedJob:
    return ClaimedJob(
        id="job_1",
        attempt=1,
        tenant="acme",
        endpoint="/v1/chat/completions",
        model=model,
        body=b"{}",
        priority=Priority.STANDARD,
        stream=False,
        plan=plan,
        step=step,
    )


def test_a_job_queued_under_the_old_config_keeps_its_deployment() -> None:
    """Moved to another upstream model: the old job still resolves, from the config the
    worker ran before; the current config wins where both have the step."""
    old = cfg()
    models = copy.deepcopy(BASE["models"])
    models["gpt-4o-mini"]["deployments"] = [{"provider": "openai", "model": "other"}]
    models["fallback-alias"] = {"deployments": [{"provider": "openai", "model": "fb"}]}
    new = cfg(models=models)
    memory = RouteMemory()
    queued_before = claimed("gpt-4o-mini", plan="gpt-4o-mini|openai|gpt-4o-mini")
    assert memory.steps(queued_before, new, "openai") == [None]
    memory.moved_on(old)
    [step] = memory.steps(queued_before, new, "openai")
    assert step is not None
    assert step.deployment.model == "gpt-4o-mini"
    [plain] = memory.steps(claimed("gpt-4o-mini"), new, "openai")  # no plan: the pool's
    assert plain is not None
    assert plain.deployment.model == "other"


def test_an_unknown_step_waits_for_a_reload_for_a_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memory = RouteMemory()
    job = claimed("brand-new")
    assert memory.steps(job, cfg(), "openai") == [None]
    now = [1000.0]
    monkeypatch.setattr(worker_config.time, "monotonic", lambda: now[0])
    assert memory.within_grace(job)
    now[0] += worker_config.CONFIG_SKEW_GRACE_S - 1
    assert memory.within_grace(job)
    now[0] += 2
    assert not memory.within_grace(job)
    memory.moved_on(cfg())  # a reload: a fresh grace
    assert memory.within_grace(job)


async def test_a_sighup_while_the_process_starts_is_kept_for_the_reloader(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    catch_early_sighup()  # what `anygate api|worker|control` do first
    h.write(tree(**{"pools/openai/concurrency": 7}))
    os.kill(os.getpid(), signal.SIGHUP)  # not fatal, and not forgotten
    h.reloader.start()
    try:
        async with asyncio.timeout(10):
            while h.state.generation < 2:
                await asyncio.sleep(0.02)
    finally:
        await h.reloader.stop()
    assert h.state.config.pool("openai").concurrency == 7
