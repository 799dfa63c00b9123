"""The PromQL of ``ops/``: every query of the Grafana dashboard and every alert rule, read from
the files as shipped, and the series each one selects with what surrounds it (the aggregations
and functions it sits in), parsed by a real PromQL parser (``promql-parser``).

Grafana's range variables are not PromQL; they are replaced by a duration before parsing, as
Grafana does before it sends a query. ``$pool`` only ever appears inside a label matcher's
string, which parses as it is (and matches everything once ``$pool`` is its All value, ``.*``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "anygate.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
ALERTS_TEST = ROOT / "ops" / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = ROOT / "ops" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "ops" / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.yml"

GRAFANA_RANGES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
ALL_POOLS = ".*"
"""The dashboard's ``$pool`` All value."""
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[a-zA-Z_:][\w:]*),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Query:
    where: str
    """Which panel target or alert rule, for failure messages."""
    expr: str
    """As written in the file."""

    @property
    def promql(self) -> str:
        """What Prometheus receives: Grafana's range variables replaced by durations."""
        text = self.expr
        for variable, duration in GRAFANA_RANGES.items():
            text = text.replace(variable, duration)
        return text

    @property
    def with_all_pools(self) -> str:
        """As Grafana sends it with ``$pool`` at All."""
        return self.promql.replace("$pool", ALL_POOLS)


@dataclass(frozen=True)
class Context:
    """One expression node around a selector: an aggregation (``op`` is ``sum``, ``max``…,
    ``by``/``without`` labels) or a function call (``op`` is its name)."""

    kind: str  # "aggregation" | "call" | "range" (only while parsing)
    op: str
    by: tuple[str, ...] | None = None
    without: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Selector:
    name: str | None
    matchers: tuple[tuple[str, str, str], ...]
    """(label, operator, value), operator one of ``=``, ``!=``, ``=~``, ``!~``."""
    ancestors: tuple[Context, ...]
    """Innermost first."""
    ranged: bool
    """Written with a range, ``x[5m]``."""


def load_dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def load_alert_rules() -> list[dict[str, Any]]:
    tree = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in tree["groups"] for rule in group["rules"]]


def dashboard_panels(dashboard: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included; rows themselves too."""
    board = dashboard if dashboard is not None else load_dashboard()
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries(dashboard: dict[str, Any] | None = None) -> list[Query]:
    return [
        Query(f"panel {panel['title']!r}, target {target['refId']}", target["expr"])
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def alert_queries() -> list[Query]:
    return [Query(f"alert {rule['alert']}", rule["expr"]) for rule in load_alert_rules()]


def variable_series(dashboard: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """(variable, metric, label) of every ``label_values(metric, label)`` variable."""
    board = dashboard if dashboard is not None else load_dashboard()
    found = []
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = LABEL_VALUES.match(text.strip())
        assert match, f"variable {variable['name']}: not label_values(metric, label): {text}"
        found.append((variable["name"], match["metric"], match["label"]))
    return found


_MATCH_OPS = {
    "MatchOp.Equal": "=",
    "MatchOp.NotEqual": "!=",
    "MatchOp.Re": "=~",
    "MatchOp.NotRe": "!~",
}
"""By ``str()``: the binding's ``MatchOp`` is neither hashable nor named."""
_OP_NAME = re.compile(r"^\s*([a-z_]+)")


def _context(node: promql_parser.Expr) -> Context | None:
    if isinstance(node, promql_parser.AggregateExpr):
        match = _OP_NAME.match(str(node))
        assert match, str(node)
        modifier = node.modifier
        by = without = None
        if modifier is not None:
            labels = tuple(modifier.labels)
            if modifier.type == promql_parser.AggModifierType.By:
                by = labels
            else:
                without = labels
        return Context("aggregation", match[1], by, without)
    if isinstance(node, promql_parser.Call):
        return Context("call", node.func.name)
    if isinstance(node, promql_parser.MatrixSelector):
        return Context("range", "")
    return None


def selectors(expr: str) -> list[Selector]:
    """Every series selector of ``expr`` (PromQL, Grafana variables already replaced), with
    the aggregations and calls around it; raises ``ValueError`` if it does not parse."""
    tree = promql_parser.parse(expr)
    stack: list[Context | None] = []
    found: list[Selector] = []

    def enter(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple(
                (m.name, _MATCH_OPS[str(m.op)], m.value) for m in node.matchers.matchers
            )
            ancestors = tuple(c for c in reversed(stack) if c is not None)
            ranged = bool(ancestors) and ancestors[0].kind == "range"
            found.append(
                Selector(node.name, matchers, ancestors[1:] if ranged else ancestors, ranged)
            )
        stack.append(_context(node))

    def leave(_node: promql_parser.Expr) -> None:
        stack.pop()

    promql_parser.walk(tree, enter, leave)
    return found
