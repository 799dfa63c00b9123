"""The dashboard and the alert rules (``ops/``) read series the gateway really serves: a stack
with its metrics endpoints on (the API's ``/metrics`` open, a worker and a control process with
``--metrics-port``) runs a few jobs, and every series a dashboard panel or an alert rule names
is declared on the /metrics of the processes docs/metrics.md says expose it, with only the
catalogue's labels; the series the jobs must have moved have samples.

``tests/unit/test_dashboards.py`` checks the queries against the catalogue; this checks the
catalogue against the running code."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from anygate.config import parse_config
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import config_tree
from tests.support.eventually import eventually
from tests.support.jobs import read_sse, submit
from tests.support.metric_catalogue import PROMETHEUS_SERIES, Metric, Role, lookup
from tests.support.mock import MockControl
from tests.support.processes import ManagedProcess, free_port
from tests.support.promql_queries import alert_queries, dashboard_queries, selectors
from tests.support.stack import ANYGATE, Stack

TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
CONCURRENCY = 4
CHAT = {
    "model": "gpt-4o-mini",
    "temperature": 0,
    "messages": [{"role": "user", "content": "the same question twice"}],
}


def _queried() -> dict[str, Metric]:
    """Every catalogued series the dashboard or an alert rule names, by name."""
    found: dict[str, Metric] = {}
    for query in dashboard_queries() + alert_queries():
        for selector in selectors(query.promql):
            if selector.name in PROMETHEUS_SERIES:
                continue
            metric = lookup(selector.name or "")
            assert metric is not None, f"{query.where}: {selector.name} (tests/unit catches it)"
            found[metric.name] = metric
    return found


def _tree(redis_url: str, namespace: str, mock_url: str) -> dict[str, Any]:
    tree = config_tree(redis_url, namespace, mock_root=mock_url, metrics={"api_access": "open"})
    tree["models"]["gpt-4o-mini"]["cache"] = True
    for tenant in tree["tenants"]:
        if tenant["id"] == "acme":
            tenant["quotas"] = {"daily_usd": 100.0}  # so that acme has a budget ratio
    return tree


def _missing_prerequisite(tree: dict[str, Any]) -> str | None:
    try:
        parse_config(tree)
    except Exception as exc:
        return f"the config has no `metrics` block yet: {exc}"
    for role in ("worker", "control"):
        usage = subprocess.run(
            [*ANYGATE, role, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        if "--metrics-port" not in usage.stdout:
            return f"`anygate {role}` has no --metrics-port yet"
    return None


class Scrape:
    """One process's /metrics: the names it declares (``# TYPE``) and its samples."""

    def __init__(self, text: str) -> None:
        self.declared = {name for name, _type in TYPE_LINE.findall(text)}
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def values(self, name: str, **labels: str) -> list[float]:
        return [
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and labels.items() <= sample_labels.items()
        ]


@pytest.fixture
def metrics_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[tuple[Stack, dict[Role, str]]]:
    """API (``/metrics`` open), one openai worker and one control process, each with its
    metrics URL."""
    tree = _tree(redis_server.url, namespace, mock.url)
    missing = _missing_prerequisite(tree)
    if missing is not None:
        pytest.fail(missing)
    stack = Stack(tmp_path, tree)
    try:
        api = stack.start_api()
        urls: dict[Role, str] = {"api": f"{api}/metrics"}
        for role, extra in (
            ("worker", ["--pool", "openai", "--concurrency", str(CONCURRENCY)]),
            ("control", []),
        ):
            port = free_port()
            urls[role] = f"http://127.0.0.1:{port}/metrics"
            proc = ManagedProcess.start(
                [*ANYGATE, role, *extra, "--metrics-port", str(port)],
                env=stack.env,
                ready_url=urls[role],
            )
            stack.started.append(proc)
            (stack.workers if role == "worker" else stack.controls).append(proc)
        yield stack, urls
    except BaseException:
        stack.stop()
        raise
    stack.stop()
    stack.check_logs()


async def _run_some_jobs(stack: Stack) -> None:
    """A queued job to its end, the same sync call twice (a cache miss, then a hit) and a
    streamed call (a first token)."""
    async with stack.client() as client:
        job = await submit(client)
        events = await read_sse(client, job["id"])
        assert events[-1][1] == "completed", events
        for _ in range(2):
            answer = await client.post("/v1/chat/completions", json=CHAT)
            assert answer.status_code == 200, answer.text
        async with client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True, "temperature": 1}
        ) as streamed:
            assert streamed.status_code == 200
            async for _line in streamed.aiter_lines():
                pass


def _scrape(url: str) -> Scrape:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, (url, answer.status_code)
    return Scrape(answer.text)


def _counted(scrape: Scrape) -> Scrape | None:
    """The scrape once it has counted a submitted and a finished job."""
    done = sum(scrape.values("anygate_jobs_finished_total", pool="openai"))
    submitted = sum(scrape.values("anygate_jobs_submitted_total", pool="openai"))
    return scrape if done >= 1 and submitted >= 1 else None


async def test_every_queried_series_is_served_by_its_processes(
    metrics_stack: tuple[Stack, dict[Role, str]],
) -> None:
    stack, urls = metrics_stack
    await _run_some_jobs(stack)
    scrapes: dict[Role, Scrape] = {}
    for role, url in urls.items():
        scrapes[role] = _scrape(url)
    # control refreshes the cluster series from Redis every few seconds (docs/metrics.md)
    scrapes["control"] = await eventually(
        lambda: _counted(_scrape(urls["control"])),
        what="control's cluster series to count the jobs",
        timeout=15,
        interval=0.5,
    )

    queried = _queried()
    missing = {
        (name, role)
        for name, metric in queried.items()
        for role in metric.exposed_by
        if name not in scrapes[role].declared
    }
    assert not missing, f"queried by ops/ but not served: {sorted(missing)}"

    for role, scrape in scrapes.items():
        for name, labels, _value in scrape.samples:
            metric = lookup(name.removesuffix("_created"))
            if metric is None or not name.startswith("anygate_"):
                continue
            extra = set(labels) - set(metric.labels) - {"le"}
            assert not extra, f"{role}: {name} carries labels {extra} docs/metrics.md lacks"

    api, worker, control = scrapes["api"], scrapes["worker"], scrapes["control"]
    assert sum(api.values("anygate_http_requests_total", route="/v1/chat/completions")) >= 3
    assert sum(api.values("anygate_cache_requests_total", result="hit")) >= 1
    assert worker.values("anygate_worker_slots", pool="openai") == [CONCURRENCY]
    assert sum(worker.values("anygate_queue_wait_seconds_count", pool="openai")) >= 1
    assert sum(worker.values("anygate_job_duration_seconds_count", pool="openai")) >= 1
    assert sum(worker.values("anygate_time_to_first_token_seconds_count", pool="openai")) >= 1
    assert control.values("anygate_workers_alive", pool="openai") == [1]
    assert sum(control.values("anygate_jobs_submitted_total", pool="openai")) >= 1
    assert (
        sum(control.values("anygate_jobs_finished_total", pool="openai", outcome="succeeded")) >= 1
    )
    assert sum(control.values("anygate_tokens_total", tenant="acme")) > 0
    assert control.values("anygate_budget_used_ratio", tenant="acme", period="day")
    for scrape in scrapes.values():
        assert sum(scrape.values("anygate_redis_roundtrip_seconds_count")) >= 1
