"""Process series (docs/metrics.md): label values stay bounded and are bound once, requests
count under their route template, and ``/metrics`` is where ``metrics.api_access`` says.

The app runs in-process without its lifespan (no Redis): routes that need the gateway answer
503, which is still an answer counted under its route. Series live in the default registry,
shared by every test in the process, so each test reads deltas."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from anygate.api import create_app
from anygate.api.request_observer import UNMATCHED
from anygate.broker.errors import (
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTransientError,
)
from anygate.config import ConfigError, parse_config
from anygate.telemetry import metrics, scrape, serve
from anygate.workers.failure_policy import Action, Decision
from anygate.workers.metric_labels import retry_reason, upstream_outcome, webhook_kind
from anygate.workers.rate_gate import _Limit


def _requests(route: str, method: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return REGISTRY.get_sample_value("anygate_http_requests_total", labels) or 0.0


def _durations(route: str, method: str) -> float:
    labels = {"route": route, "method": method}
    return REGISTRY.get_sample_value("anygate_http_request_duration_seconds_count", labels) or 0.0


def _client(**metrics_config: object) -> httpx.AsyncClient:
    app = create_app(parse_config({"metrics": metrics_config}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


class TestLabelBinding:
    def test_one_child_per_label_tuple_bound_once(self) -> None:
        """The hot path reuses the bound child: no ``labels()`` call per request."""
        first = metrics._http_children("/x", "GET", 200)
        assert metrics._http_children("/x", "GET", 200) is first
        assert metrics._http_children("/x", "GET", 404) is not first

    def test_an_unknown_method_counts_as_other(self) -> None:
        before = _requests("/t-method", "OTHER", 200)
        metrics.observe_http("/t-method", "BREW", 200, 0.01)
        assert _requests("/t-method", "OTHER", 200) == before + 1
        assert _requests("/t-method", "BREW", 200) == 0

    def test_rate_limit_waits_count_and_add_up_seconds(self) -> None:
        labels = {"pool": "p-unit", "deployment": "p-unit:m"}
        before = REGISTRY.get_sample_value("anygate_rate_limit_wait_seconds_total", labels) or 0
        metrics.count_rate_limit_wait("p-unit", "p-unit:m", "tpm", 1.5)
        metrics.count_rate_limit_wait("p-unit", "p-unit:m", "tenant", 0.5)
        waited = REGISTRY.get_sample_value("anygate_rate_limit_wait_seconds_total", labels)
        assert waited == before + 2.0
        tpm = REGISTRY.get_sample_value(
            "anygate_rate_limit_waits_total", {**labels, "limit": "tpm"}
        )
        assert tpm is not None
        assert tpm >= 1

    def test_redis_errors_are_labelled_by_class(self) -> None:
        labels = {"kind": "ConnectionRefusedError"}
        before = REGISTRY.get_sample_value("anygate_redis_errors_total", labels) or 0
        metrics.count_redis_error(ConnectionRefusedError("nope"))
        assert REGISTRY.get_sample_value("anygate_redis_errors_total", labels) == before + 1

    def test_every_process_series_of_the_catalogue_is_exposed(self) -> None:
        names = {family.name for family in text_string_to_metric_families(scrape()[0].decode())}
        assert {
            "anygate_http_requests",
            "anygate_http_request_duration_seconds",
            "anygate_cache_requests",
            "anygate_upstream_request_duration_seconds",
            "anygate_time_to_first_token_seconds",
            "anygate_queue_wait_seconds",
            "anygate_job_duration_seconds",
            "anygate_rate_limit_waits",
            "anygate_rate_limit_wait_seconds",
            "anygate_upstream_cooldowns",
            "anygate_retries",
            "anygate_worker_slots",
            "anygate_worker_slots_busy",
            "anygate_webhook_deliveries",
            "anygate_redis_errors",
            "anygate_redis_roundtrip_seconds",
            "anygate_budget_warnings",
        } <= names


class TestWorkerLabels:
    """A provider's own error codes never become label values."""

    def test_a_rate_limit_wait_names_the_limit_that_refused(self) -> None:
        assert _Limit("rpm:t:acme", 1, 1, False, "tenant acme", tenant=True).kind == "tenant"
        assert _Limit("tpm:t:acme", 1, 1, True, "tenant acme", tenant=True).kind == "tenant"
        assert _Limit("rpm:openai:m", 1, 1, False, "openai/m").kind == "rpm"
        assert _Limit("tpm:openai:m", 1, 1, True, "openai/m").kind == "tpm"

    def test_upstream_outcomes(self) -> None:
        assert upstream_outcome(UpstreamRateLimitedError("slow down")) == "rate_limited"
        assert upstream_outcome(UpstreamTransientError("t", code="upstream_timeout")) == "timeout"
        assert upstream_outcome(UpstreamTransientError("x", code="weird_vendor_code")) == "error"
        assert upstream_outcome(UpstreamRejectedError("bad", code="context_length")) == "error"

    def test_retry_reasons(self) -> None:
        transient = UpstreamTransientError("x", code="some_vendor_code")
        assert retry_reason(Decision(Action.RETRY), transient) == "upstream_error"
        timeout = UpstreamTransientError("t", code="upstream_timeout")
        assert retry_reason(Decision(Action.RETRY), timeout) == "timeout"
        refused = UpstreamTransientError("c", code="upstream_connection_error")
        assert retry_reason(Decision(Action.RETRY), refused) == "connection"
        limited = UpstreamRateLimitedError("429")
        assert retry_reason(Decision(Action.COOL_DOWN), limited) == "rate_limited"
        assert retry_reason(Decision(Action.FALL_BACK, next_step=1), transient) == "fallback"
        assert retry_reason(Decision(Action.FAIL), transient) is None

    @pytest.mark.parametrize(
        ("event", "kind"),
        [("job.succeeded", "job"), ("batch.completed", "batch"), ("budget.crossed", "budget")],
    )
    def test_webhook_kinds(self, event: str, kind: str) -> None:
        assert webhook_kind(event) == kind


class TestRouteTemplates:
    async def test_a_request_counts_under_its_route_template_not_its_path(self) -> None:
        route = "/v1/jobs/{job_id}"
        before, timed = _requests(route, "GET", 503), _durations(route, "GET")
        async with _client() as client:
            answer = await client.get("/v1/jobs/job_abc123")
            await client.get("/v1/jobs/job_def456")
        assert answer.status_code == 503  # no gateway without the lifespan
        assert _requests(route, "GET", 503) == before + 2
        assert _durations(route, "GET") == timed + 2
        assert _requests("/v1/jobs/job_abc123", "GET", 503) == 0

    async def test_an_unknown_path_counts_as_unmatched(self) -> None:
        before = _requests(UNMATCHED, "GET", 404)
        async with _client() as client:
            assert (await client.get("/no/such/thing/42")).status_code == 404
        assert _requests(UNMATCHED, "GET", 404) == before + 1

    async def test_a_wrong_method_counts_under_the_route_it_hit(self) -> None:
        before = _requests("/healthz", "DELETE", 405)
        async with _client() as client:
            assert (await client.delete("/healthz")).status_code == 405
        assert _requests("/healthz", "DELETE", 405) == before + 1


class TestEndpoint:
    async def test_open_access_serves_the_text_format(self) -> None:
        async with _client(api_access="open") as client:
            await client.get("/healthz")
            answer = await client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(answer.text)}
        samples = families["anygate_http_requests"].samples
        assert any(s.labels["route"] == "/healthz" and s.value >= 1 for s in samples)

    async def test_port_access_keeps_metrics_off_the_main_port(self) -> None:
        async with _client(api_access="port", api_port=9999) as client:
            assert (await client.get("/metrics")).status_code == 404

    async def test_disabled_serves_nothing(self) -> None:
        async with _client(enabled=False, api_access="open") as client:
            assert (await client.get("/metrics")).status_code == 404

    def test_port_access_needs_a_port(self) -> None:
        with pytest.raises(ConfigError, match="api_port is required"):
            parse_config({"metrics": {"api_access": "port"}})


class _OneSeries(Collector):
    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("anygate_test_cluster_series", "A collector's series.", value=7)


class TestExposition:
    def test_a_registered_collector_is_served_with_the_process_series(self) -> None:
        collector = _OneSeries()
        metrics.register_collector(collector)
        try:
            text = scrape()[0].decode()
        finally:
            REGISTRY.unregister(collector)
        assert "anygate_test_cluster_series 7.0" in text
        assert "anygate_http_requests_total" in text

    def test_the_listener_serves_the_scrape_and_stops(self) -> None:
        server = serve("127.0.0.1", 0)
        try:
            answer = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        finally:
            server.close()
        assert answer.status_code == 200
        assert "anygate_redis_roundtrip_seconds" in answer.text
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
