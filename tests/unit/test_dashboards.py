"""The Grafana dashboard and the Prometheus alert rules under ``ops/`` query only what the
gateway exposes (docs/metrics.md, mirrored in ``tests/support/metric_catalogue.py``), the way
docs/operations.md says to: every query parses as PromQL, names a catalogued series with its
own labels, rates its counters, keeps ``le`` for ``histogram_quantile`` and reads the cluster
series through a ``max`` (each control process exposes the same values). The compose stack
wires them up: what Prometheus scrapes is what the processes serve, and the files Grafana and
Prometheus are given exist.

promtool and a real Prometheus check the same files in tests/integration/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.metric_catalogue import (
    BY_NAME,
    CATALOGUE,
    PROMETHEUS_LABELS,
    PROMETHEUS_SERIES,
    Metric,
    lookup,
)
from tests.support.promql_queries import (
    ALERTS,
    ALERTS_TEST,
    COMPOSE,
    DASHBOARD,
    GRAFANA_PROVISIONING,
    PROMETHEUS_CONFIG,
    ROOT,
    Query,
    Selector,
    alert_queries,
    dashboard_panels,
    dashboard_queries,
    load_alert_rules,
    load_dashboard,
    selectors,
    variable_series,
)

QUERIES = dashboard_queries() + alert_queries()
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
GAUGE_FUNCTIONS = frozenset({"delta", "deriv", "idelta", "absent"})
SIMPLE_ALTERNATIVES = re.compile(r"^\w+(\|\w+)*$")
METRICS_PORT = 9100
"""Where every anygate process of the compose stack serves /metrics."""


def _ids(queries: list[Query]) -> list[str]:
    return [query.where for query in queries]


def _resolved(query: Query) -> list[tuple[Selector, Metric | None]]:
    return [(s, lookup(s.name) if s.name else None) for s in selectors(query.promql)]


def _catalogued(query: Query) -> list[tuple[Selector, Metric]]:
    return [(s, metric) for s, metric in _resolved(query) if metric is not None]


# --- every query ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES, ids=_ids(QUERIES))
def test_query_parses_as_promql(query: Query) -> None:
    assert selectors(query.promql), f"{query.where} selects no series: {query.expr}"


@pytest.mark.parametrize("query", QUERIES, ids=_ids(QUERIES))
def test_query_selects_only_catalogued_series(query: Query) -> None:
    for selector, metric in _resolved(query):
        assert selector.name is not None, f"{query.where}: name the series, not __name__"
        assert metric is not None or selector.name in PROMETHEUS_SERIES, (
            f"{query.where}: {selector.name} is not in docs/metrics.md's catalogue"
        )


@pytest.mark.parametrize("query", QUERIES, ids=_ids(QUERIES))
def test_query_matches_and_groups_on_the_series_own_labels(query: Query) -> None:
    for selector, metric in _catalogued(query):
        bucket = metric.kind == "histogram" and selector.name == f"{metric.name}_bucket"
        known = set(metric.labels) | PROMETHEUS_LABELS | ({"le"} if bucket else set())
        for label, op, value in selector.matchers:
            assert label in known, f"{query.where}: {metric.name} has no label {label!r}"
            if label not in metric.closed or "$" in value:
                continue
            if op in ("=", "!=") or SIMPLE_ALTERNATIVES.match(value):
                values = set(value.split("|")) if op in ("=~", "!~") else {value}
                unknown = values - set(metric.labels[label])
                assert not unknown, f"{query.where}: {metric.name}{{{label}}} is never {unknown}"
        for context in selector.ancestors:
            missing = set(context.by or ()) - known
            assert not missing, (
                f"{query.where}: {context.op} by {missing}, labels {metric.name} does not have"
            )


@pytest.mark.parametrize("query", QUERIES, ids=_ids(QUERIES))
def test_counters_are_rated_and_gauges_are_not(query: Query) -> None:
    for selector, metric in _catalogued(query):
        inner = selector.ancestors[0] if selector.ancestors else None
        around = inner.op if inner is not None and inner.kind == "call" else None
        if metric.kind == "gauge":
            assert around not in RATE_FUNCTIONS, f"{query.where}: {around}() of gauge {metric.name}"
            assert not selector.ranged or around in GAUGE_FUNCTIONS, query.where
        else:
            assert selector.name != metric.name or metric.kind == "counter", (
                f"{query.where}: a histogram is read through its _bucket, _sum or _count series"
            )
            assert selector.ranged, f"{query.where}: {selector.name} is read without a range"
            assert around in RATE_FUNCTIONS, (
                f"{query.where}: the counter {selector.name} is shown raw, not through rate()"
            )


@pytest.mark.parametrize("query", QUERIES, ids=_ids(QUERIES))
def test_histogram_quantile_keeps_le_and_reads_buckets(query: Query) -> None:
    for selector, metric in _catalogued(query):
        contexts = list(selector.ancestors)
        quantile = next((i for i, c in enumerate(contexts) if c.op == "histogram_quantile"), None)
        if quantile is None:
            assert not selector.name or not selector.name.endswith("_bucket"), (
                f"{query.where}: {selector.name} outside histogram_quantile()"
            )
            continue
        assert selector.name == f"{metric.name}_bucket", (
            f"{query.where}: histogram_quantile() over {selector.name}"
        )
        for context in contexts[:quantile]:
            if context.kind == "aggregation":
                assert "le" in (context.by or ()), (
                    f"{query.where}: {context.op} drops `le` before histogram_quantile()"
                )


@pytest.mark.parametrize("query", QUERIES, ids=_ids(QUERIES))
def test_series_are_aggregated_over_processes_as_their_kind_needs(query: Query) -> None:
    """A cluster series' first aggregation is a ``max`` that takes ``instance`` away (every
    control process exposes the same value: a sum would count it once per process); a process
    series is always aggregated over the processes, never shown one line per process."""
    for selector, metric in _catalogued(query):
        aggregations = [c for c in selector.ancestors if c.kind == "aggregation"]
        if metric.source == "cluster":
            calls = [c.op for c in selector.ancestors if c.kind == "call"]
            if calls[:1] == ["absent"]:
                continue
            assert aggregations, f"{query.where}: {metric.name} is not deduplicated"
            first = aggregations[0]
            assert first.op == "max", (
                f"{query.where}: {metric.name} (a cluster series) goes through {first.op} "
                "first; use max without (instance)"
            )
            assert "instance" in (first.without or ()) or (
                first.without is None and "instance" not in (first.by or ())
            ), f"{query.where}: {metric.name}'s max keeps `instance`"
        else:
            assert aggregations, f"{query.where}: {metric.name} is shown per process"


# --- the dashboard -------------------------------------------------------------------------


def test_every_catalogued_series_has_a_panel() -> None:
    shown = {
        metric.name for query in dashboard_queries() for _selector, metric in _catalogued(query)
    }
    assert shown == set(BY_NAME), f"series without a panel: {sorted(set(BY_NAME) - shown)}"


def test_every_panel_reads_the_datasource_variable() -> None:
    board = load_dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for panel in dashboard_panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == expected, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == expected, (panel["title"], target["refId"])
    assert variables["pool"]["datasource"] == expected


def test_the_pool_variable_filters_every_series_with_a_pool() -> None:
    variables = variable_series()
    assert ("pool", "anygate_workers_alive", "pool") in variables
    for name, metric, label in variables:
        assert label in BY_NAME[metric].labels, f"variable {name}: {metric} has no {label}"
    for query in dashboard_queries():
        for selector, metric in _catalogued(query):
            if "pool" in metric.labels:
                assert ("pool", "=~", "$pool") in selector.matchers, (
                    f"{query.where}: {metric.name} ignores the $pool picker"
                )


def test_panels_have_unique_ids_a_place_and_a_description() -> None:
    panels = list(dashboard_panels())
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel.get("description"), f"panel {panel['title']!r} has no description"
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    board = load_dashboard()
    assert board["uid"]
    assert board["title"]


# --- the alert rules -----------------------------------------------------------------------


def test_every_alert_has_a_wait_a_severity_and_words_for_the_operator() -> None:
    rules = load_alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert rule["alert"].startswith("Anygate"), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule["for"])), f"{rule['alert']}: for: {rule['for']}"
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"].split()) >= 10, rule["alert"]


def test_the_issue_alerts_exist() -> None:
    """What docs/operations.md promises an operator is alerted on, by the series it watches."""
    watched: dict[str, set[str]] = {}
    for query in alert_queries():
        watched[query.where.removeprefix("alert ")] = {
            s.name for s in selectors(query.promql) if s.name
        }
    wanted = {
        "AnygateOldestJobTooOld": "anygate_queue_oldest_age_seconds",
        "AnygateHighApiErrorRate": "anygate_http_requests_total",
        "AnygateHighJobFailureRate": "anygate_jobs_finished_total",
        "AnygateBreakerOpen": "anygate_breaker_state",
        "AnygateNoLiveWorkers": "anygate_workers_alive",
        "AnygateDeadLettersGrowing": "anygate_dead_letters",
        "AnygateBudgetNearLimit": "anygate_budget_used_ratio",
        "AnygateRedisErrors": "anygate_redis_errors_total",
    }
    for alert, series in wanted.items():
        assert series in watched.get(alert, set()), f"{alert} does not watch {series}"


def test_the_rule_unit_tests_load_the_shipped_rules() -> None:
    tree = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))
    assert [ALERTS_TEST.parent / f for f in tree["rule_files"]] == [ALERTS]
    tested = {case["alertname"] for test in tree["tests"] for case in test["alert_rule_test"]}
    assert len(tested) >= 2
    assert tested <= {rule["alert"] for rule in load_alert_rules()}


# --- the compose stack ---------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    tree: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return tree


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → repository path, of the service's bind mounts from the repository."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def _prometheus_config() -> dict[str, Any]:
    tree: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    return tree


def test_every_gateway_process_serves_metrics_where_prometheus_scrapes() -> None:
    services = _compose()["services"]
    scraped: dict[str, int] = {}
    for job in _prometheus_config()["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                assert name in services, f"{job['job_name']} scrapes no service {name!r}"
                scraped[name] = sd["port"]
    roles = {
        name: service["command"][0]
        for name, service in services.items()
        if service.get("build") and service["command"][0] in {"api", "worker", "control"}
    }
    assert set(roles.values()) == {"api", "worker", "control"}
    assert set(scraped) == set(roles), "every api, worker and control service is scraped"
    for name, role in roles.items():
        assert scraped[name] == METRICS_PORT, name
        env = services[name]["environment"]
        if role == "api":
            assert env["ANYGATE__METRICS__API_ACCESS"] == "port"
            assert int(env["ANYGATE__METRICS__API_PORT"]) == METRICS_PORT
        else:
            command = services[name]["command"]
            flag = command.index("--metrics-port")
            assert int(command[flag + 1]) == METRICS_PORT, name


def test_prometheus_is_given_its_config_and_the_rules() -> None:
    service = _compose()["services"]["prometheus"]
    mounts = _mounts(service)
    config_flag = next(a for a in service["command"] if a.startswith("--config.file="))
    config_path = Path(config_flag.split("=", 1)[1])
    assert mounts[str(config_path.parent)] / config_path.name == PROMETHEUS_CONFIG
    rule_files = [PROMETHEUS_CONFIG.parent / f for f in _prometheus_config()["rule_files"]]
    assert rule_files == [ALERTS]
    for source in mounts.values():
        assert source.exists(), source


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard() -> None:
    service = _compose()["services"]["grafana"]
    mounts = _mounts(service)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    datasources = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    assert [d["type"] for d in datasources] == ["prometheus"]
    assert datasources[0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (GRAFANA_PROVISIONING / "dashboards" / "anygate.yml").read_text(encoding="utf-8")
    )["providers"]
    dashboards_dir = providers[0]["options"]["path"]
    assert mounts[dashboards_dir] == DASHBOARD.parent
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounts[str(Path(home).parent)] / Path(home).name == DASHBOARD


# --- the catalogue -------------------------------------------------------------------------


def test_lookup_strips_suffixes_of_histograms_only() -> None:
    assert lookup("anygate_queue_wait_seconds_bucket") is BY_NAME["anygate_queue_wait_seconds"]
    assert lookup("anygate_queue_wait_seconds_count") is BY_NAME["anygate_queue_wait_seconds"]
    assert lookup("anygate_queue_depth_count") is None
    assert lookup("anygate_nonesuch") is None


def test_the_catalogue_is_docs_metrics_md() -> None:
    """docs/metrics.md lists the series in tables whose first column is the name."""
    page = ROOT / "docs" / "metrics.md"
    if not page.exists():
        pytest.skip("docs/metrics.md is not written yet")
    names = set(
        re.findall(r"^\|\s*`(anygate_\w+)`", page.read_text(encoding="utf-8"), re.MULTILINE)
    )
    assert names == {metric.name for metric in CATALOGUE}
