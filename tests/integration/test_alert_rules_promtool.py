"""The alert rules and the scrape config under ``ops/prometheus/`` as Prometheus itself reads
them: ``promtool`` checks them and runs their unit tests (``alerts_test.yml``), and a real
Prometheus (127.0.0.1 only, stopped by its pid) scrapes a canned ``/metrics`` in the
catalogue's names, loads the rules, evaluates them, and answers every dashboard query with data.

promtool and prometheus come from Debian's ``prometheus`` package, which ``.ci/setup`` installs
when it can; without them these tests skip and say so."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.support.metric_catalogue import CATALOGUE, Metric
from tests.support.processes import ManagedProcess, free_port
from tests.support.promql_queries import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_CONFIG,
    dashboard_queries,
    load_alert_rules,
)

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
MISSING = "needs promtool and prometheus (apt-get install prometheus; .ci/setup does it)"
DEADLINE_S = 60.0


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(PROMTOOL is None, reason=MISSING)
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    rules = _promtool("check", "rules", ALERTS)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(load_alert_rules())} rules found" in rules.stdout
    config = _promtool("check", "config", PROMETHEUS_CONFIG)
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=MISSING)
def test_the_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", ALERTS_TEST)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=MISSING)
def test_the_rule_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the same file expecting another severity does."""
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    text = ALERTS_TEST.read_text(encoding="utf-8")
    assert "severity: critical, job: anygate-control, pool: openai" in text
    broken = tmp_path / "alerts_test.yml"
    broken.write_text(
        text.replace(
            "severity: critical, job: anygate-control, pool: openai",
            "severity: warning, job: anygate-control, pool: openai",
        ),
        encoding="utf-8",
    )
    result = _promtool("test", "rules", broken)
    assert result.returncode != 0
    assert "AnygateNoLiveWorkers" in result.stdout + result.stderr


# --- a real Prometheus ---------------------------------------------------------------------

FIRING_ON_THE_CANNED_DATA = {
    "AnygateNoLiveWorkers": {"pool": "gemini"},
    "AnygateBudgetNearLimit": {"tenant": "acme", "period": "day"},
    "AnygateBreakerOpen": {"deployment": "openai/gpt-4o-mini"},
    "AnygateRedisErrors": {"kind": "TimeoutError"},
}
"""What the canned scrape below provokes: each goes pending (their ``for:`` is minutes)."""


class CannedMetrics:
    """Every catalogued series with every label value the catalogue lists; counters grow (fast)
    and histograms fill on each scrape, so rates are not zero. A few gauges are set to provoke
    alerts: no live gemini worker, acme at 90% of its daily budget, one breaker open."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._moving: list[tuple[Counter | Histogram, list[tuple[str, ...]]]] = []
        for metric in CATALOGUE:
            self._declare(metric)

    def _declare(self, metric: Metric) -> None:
        names = list(metric.labels)
        combos = list(itertools.product(*metric.labels.values()))
        doc = f"canned {metric.name}"
        if metric.kind == "counter":
            counter = Counter(
                metric.name.removesuffix("_total"), doc, names, registry=self.registry
            )
            self._moving.append((counter, combos))
        elif metric.kind == "histogram":
            histogram = Histogram(metric.name, doc, names, registry=self.registry)
            self._moving.append((histogram, combos))
        else:
            gauge = Gauge(metric.name, doc, names, registry=self.registry)
            for combo in combos:
                values = dict(zip(names, combo, strict=True))
                child = gauge.labels(*combo) if combo else gauge
                child.set(self._gauge_value(metric.name, values))
            if metric.name == "anygate_workers_alive":
                gauge.labels("gemini").set(0)

    @staticmethod
    def _gauge_value(name: str, labels: dict[str, str]) -> float:
        if name == "anygate_breaker_state":
            return 1.0 if labels["state"] == "open" else 0.0
        if name == "anygate_budget_used_ratio":
            return 0.9
        return 1.0

    def scrape(self) -> bytes:
        with self._lock:
            for family, combos in self._moving:
                for combo in combos:
                    child = family.labels(*combo) if combo else family
                    if isinstance(child, Counter):
                        # a rate over 5m of a series seconds old is its increase / 300 s
                        child.inc(100)
                    else:
                        child.observe(0.1)
            return generate_latest(self.registry)


@pytest.fixture
def canned_target() -> Iterator[str]:
    """A tiny /metrics server on 127.0.0.1; its host:port."""
    metrics = CannedMetrics()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.scrape()
            self.send_response(200)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def prometheus(tmp_path: Path, canned_target: str) -> Iterator[httpx.Client]:
    """A real Prometheus scraping the canned target every second, with the shipped rules."""
    if PROMETHEUS is None:
        pytest.skip(MISSING)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "anygate-canned", "static_configs": [{"targets": [canned_target]}]}
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    url = f"http://127.0.0.1:{free_port()}"
    with (
        ManagedProcess.start(
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            ready_url=f"{url}/-/ready",
            timeout=30,
        ),
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def _rules(client: httpx.Client) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/rules").json()
    assert answer["status"] == "success", answer
    return [rule for group in answer["data"]["groups"] for rule in group["rules"]]


def _wait_for(what: str, check: Any) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {DEADLINE_S:.0f} s")
        time.sleep(0.5)


def test_prometheus_loads_the_rules_and_they_evaluate(prometheus: httpx.Client) -> None:
    expected = {rule["alert"] for rule in load_alert_rules()}

    def pending() -> dict[str, list[dict[str, str]]] | None:
        rules = _rules(prometheus)
        if {r["name"] for r in rules} != expected:
            return None
        if any(r["health"] != "ok" or r["lastEvaluation"].startswith("0001") for r in rules):
            return None
        active = {r["name"]: [a["labels"] for a in r["alerts"]] for r in rules if r["alerts"]}
        return active if set(FIRING_ON_THE_CANNED_DATA) <= set(active) else None

    active = _wait_for("evaluation of every rule with the canned alerts active", pending)
    for rule in _rules(prometheus):
        assert rule["health"] == "ok", rule
    for alert, labels in FIRING_ON_THE_CANNED_DATA.items():
        assert any(labels.items() <= found.items() for found in active[alert]), (alert, active)
    assert "AnygateBudgetExhausted" not in active  # 90% is not 100%
    assert "AnygateClusterSeriesMissing" not in active


def test_every_dashboard_query_answers_with_data(prometheus: httpx.Client) -> None:
    """With every catalogued series present (and `$pool` at All), no panel is empty: a query
    that selects nothing (a wrong label value, a join that never matches) is caught here."""
    queries = dashboard_queries()

    def empty() -> dict[str, str]:
        found = {}
        for query in queries:
            body = prometheus.get("/api/v1/query", params={"query": query.with_all_pools}).json()
            assert body["status"] == "success", (query.where, body)
            if not body["data"]["result"]:
                found[query.where] = query.expr
        return found

    deadline = time.monotonic() + DEADLINE_S
    while missing := empty():
        if time.monotonic() > deadline:
            pytest.fail(f"queries without data after {DEADLINE_S:.0f} s: {missing}")
        time.sleep(1)
