"""Process series end to end (docs/metrics.md): an API and two workers, each scraped on its own,
count exactly what was done; ``/metrics`` is as open as ``metrics.api_access`` says; a worker
started again counts from zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import ADMIN_KEY, admin_tree
from tests.support.configs import MOCK_KEY_ENV, TENANT_KEYS
from tests.support.eventually import eventually
from tests.support.jobs import chat_job, submit
from tests.support.mock import MockControl
from tests.support.processes import ManagedProcess, free_port
from tests.support.stack import Stack, running_stack

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
SYNC_CALLS = 3
STREAMS = 2
JOBS = 4
CONCURRENCY = 4

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def scrape_url(url: str, headers: dict[str, str] | None = None) -> Samples:
    answer = httpx.get(url, headers=headers or {}, timeout=10)
    answer.raise_for_status()
    return parse(answer.text)


async def start_metered_worker(stack: Stack, port: int) -> ManagedProcess:
    proc = stack.start_worker(concurrency=CONCURRENCY, metrics_port=port)
    await eventually(lambda: scrape_url(f"http://127.0.0.1:{port}/metrics"), what="a scrape")
    return proc


async def do_the_work(client: httpx.AsyncClient) -> None:
    for _ in range(SYNC_CALLS):
        answer = await client.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200, answer.text
    for _ in range(STREAMS):
        async with client.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
        ) as answer:
            assert answer.status_code == 200
            body = b"".join([piece async for piece in answer.aiter_bytes()])
        assert b"[DONE]" in body
    for _ in range(JOBS):
        job = await submit(client, chat_job())
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})).json()
        assert done["status"] == "succeeded"


async def test_each_process_counts_what_it_did(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> None:
    tree = admin_tree(redis_server.url, namespace, mock.url)  # metrics.api_access: admin
    ports = [free_port(), free_port()]
    with running_stack(tmp_path, tree) as stack:
        for port in ports:
            await start_metered_worker(stack, port)
        headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
        async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30) as client:
            await do_the_work(client)
            refused = await client.get("/metrics")  # a tenant key is not an admin key
        anonymous = httpx.get(f"{stack.url}/metrics", timeout=10)
        assert refused.status_code == 403
        assert anonymous.status_code == 401

        calls, jobs = SYNC_CALLS + STREAMS, JOBS
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}

        def api_counts() -> Samples:
            samples = scrape_url(f"{stack.url}/metrics", admin)
            http = "anygate_http_requests_total"
            chat = {"route": "/v1/chat/completions", "method": "POST"}
            assert total(samples, http, **chat, status="200") == calls
            assert total(samples, http, route="/v1/jobs", method="POST", status="202") == jobs
            assert total(samples, http, route="/v1/jobs/{job_id}", method="GET") == jobs
            assert total(samples, http, route="/metrics", status="401") == 1
            assert total(samples, http, route="/metrics", status="403") == 1
            durations = "anygate_http_request_duration_seconds_count"
            assert total(samples, durations, **chat) == calls
            assert total(samples, "anygate_redis_roundtrip_seconds_count") > 0
            assert not any("/job_" in dict(ls).get("route", "") for _n, ls in samples)
            return samples

        await eventually(api_counts, what="the API's counters")

        def worker_counts() -> list[Samples]:
            scraped = [scrape_url(f"http://127.0.0.1:{p}/metrics") for p in ports]
            done = calls + jobs

            def summed(name: str, **labels: str) -> float:
                return sum(total(s, name, **labels) for s in scraped)

            upstream = "anygate_upstream_request_duration_seconds_count"
            assert summed(upstream, outcome="ok", pool="openai") == done
            assert summed(upstream, deployment="openai:gpt-4o-mini", model="gpt-4o-mini") == done
            # native chat jobs and streamed calls stream from the provider
            assert summed("anygate_time_to_first_token_seconds_count") == STREAMS + jobs
            assert summed("anygate_queue_wait_seconds_count", pool="openai") == done
            assert summed("anygate_job_duration_seconds_count", outcome="succeeded") == done
            for samples in scraped:
                assert total(samples, "anygate_worker_slots", pool="openai") == CONCURRENCY
                assert total(samples, "anygate_worker_slots_busy", pool="openai") == 0
                assert total(samples, "anygate_redis_roundtrip_seconds_count") > 0
            return scraped

        scraped = await eventually(worker_counts, what="the workers' counters")

        # A worker started again is a new process: its series start from zero.
        upstream = "anygate_upstream_request_duration_seconds_count"
        survivor_before = total(scraped[0], upstream)
        stack.workers[1].terminate()
        stack.workers.pop(1)
        await start_metered_worker(stack, ports[1])
        fresh = scrape_url(f"http://127.0.0.1:{ports[1]}/metrics")
        assert total(fresh, upstream) == 0
        assert total(fresh, "anygate_job_duration_seconds_count") == 0
        async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30) as client:
            for _ in range(JOBS):
                job = await submit(client, chat_job())
                done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})).json()
                assert done["status"] == "succeeded"

        def after_restart() -> bool:
            survivor = scrape_url(f"http://127.0.0.1:{ports[0]}/metrics")
            restarted = scrape_url(f"http://127.0.0.1:{ports[1]}/metrics")
            since = total(survivor, upstream) - survivor_before + total(restarted, upstream)
            assert since == JOBS
            return True

        await eventually(after_restart, what="counters after the restart")


@pytest.mark.parametrize("access", ["open", "admin", "port"])
async def test_metrics_access(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl, access: str
) -> None:
    """``open``: anyone; ``admin``: 401 without a key; ``port``: 404 on the main port, served
    on ``api_port`` without a key."""
    metrics_port = free_port()
    metrics: dict[str, Any] = {"api_access": access}
    if access == "port":
        metrics["api_port"] = metrics_port
    tree = {**admin_tree(redis_server.url, namespace, mock.url), "metrics": metrics}
    with running_stack(tmp_path, tree) as stack:
        main = httpx.get(f"{stack.url}/metrics", timeout=10)
        if access == "open":
            assert main.status_code == 200
            assert "anygate_http_requests_total" in main.text
        elif access == "admin":
            assert main.status_code == 401
            keyed = {"authorization": f"Bearer {ADMIN_KEY}"}
            assert httpx.get(f"{stack.url}/metrics", headers=keyed, timeout=10).status_code == 200
        else:
            assert main.status_code == 404
            own = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
            assert own.status_code == 200
            samples = parse(own.text)
            # the main port's 404 was counted, and is seen on the metrics port
            assert total(samples, "anygate_http_requests_total", status="404") >= 1


async def test_control_serves_its_series(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> None:
    """``anygate control --metrics-port``: its own Redis round trips, and the webhook series (a
    delivery to a port where nothing listens fails, and is retried)."""
    port = free_port()
    tree = {
        **admin_tree(redis_server.url, namespace, mock.url),
        "security": {"webhook_secret": f"env:{MOCK_KEY_ENV}"},
    }
    with running_stack(tmp_path, tree, ["openai"]) as stack:
        stack.start_control(metrics_port=port)
        async with stack.client() as client:
            await submit(client, chat_job(webhook_url=f"http://127.0.0.1:{free_port()}/hook"))

        def counted() -> bool:
            samples = scrape_url(f"http://127.0.0.1:{port}/metrics")
            assert total(samples, "anygate_redis_roundtrip_seconds_count") > 0
            retried = {"kind": "job", "outcome": "retried"}
            assert total(samples, "anygate_webhook_deliveries_total", **retried) >= 1
            assert total(samples, "anygate_webhook_deliveries_total", outcome="delivered") == 0
            return True

        await eventually(counted, what="control's series", timeout=20)


async def test_cache_and_failure_series(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> None:
    """Cache results as the caller saw them (miss, hit, bypass), and a worker's failure path:
    a 429 starts a cool-down and a retry for ``rate_limited``, a 500 a retry for
    ``upstream_error``, each call timed under its outcome."""
    tree = admin_tree(redis_server.url, namespace, mock.url)
    tree["models"]["gpt-4o-mini"]["cache"] = True
    tree["metrics"] = {"api_access": "open"}
    port = free_port()
    with running_stack(tmp_path, tree) as stack:
        await start_metered_worker(stack, port)
        async with stack.client() as client:
            body = {**CHAT, "messages": [{"role": "user", "content": "cache me"}]}
            seen = []
            for header in ("use", "use", "skip", "refresh"):
                answer = await client.post(
                    "/v1/chat/completions", json=body, headers={"x-anygate-cache": header}
                )
                assert answer.status_code == 200
                seen.append(answer.headers.get("x-anygate-cache"))
            assert seen[:2] == ["miss", "hit"]
            mock.fault(fault="429", retry_after=1, times=1)
            limited = await submit(client, chat_job("limited"))
            assert (await client.get(f"/v1/jobs/{limited['id']}", params={"wait": 15})).json()[
                "status"
            ] == "succeeded"
            mock.fault(fault="500", times=1)
            failed_once = await submit(client, chat_job("failed once"))
            assert (await client.get(f"/v1/jobs/{failed_once['id']}", params={"wait": 15})).json()[
                "status"
            ] == "succeeded"

        api = parse(httpx.get(f"{stack.url}/metrics", timeout=10).text)
        cache = "anygate_cache_requests_total"
        assert total(api, cache, result="miss") == 1
        assert total(api, cache, result="hit") == 1
        assert total(api, cache, result="bypass") == 2  # skip and refresh

        def failure_path() -> bool:
            samples = scrape_url(f"http://127.0.0.1:{port}/metrics")
            upstream = "anygate_upstream_request_duration_seconds_count"
            assert total(samples, upstream, outcome="rate_limited") == 1
            assert total(samples, upstream, outcome="error") == 1
            # miss, skip, refresh, and the two jobs' successful second calls
            assert total(samples, upstream, outcome="ok") == 5
            cooldowns = "anygate_upstream_cooldowns_total"
            assert total(samples, cooldowns, deployment="openai:gpt-4o-mini") == 1
            retries = "anygate_retries_total"
            assert total(samples, retries, pool="openai", reason="rate_limited") == 1
            assert total(samples, retries, pool="openai", reason="upstream_error") == 1
            # each job counts once: claims after a retry come from the redeliveries
            assert total(samples, "anygate_queue_wait_seconds_count") == 5
            return True

        await eventually(failure_path, what="the worker's failure-path series")
