"""Patient work goes to the providers' own Batch APIs at half price, behind the same job
contract: a whole stack (API, workers, control plane) against the mock's OpenAI Batch API and
Gemini batch mode over real HTTP, driven by the official openai SDK.

Each line ends exactly once whatever the provider's batch does: answered by it, failed halfway,
or still running at the cutoff; what it did not answer runs live.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from anygate.broker import KeySpace
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.batches import batch_line, batch_reaches, file_lines, jsonl, openai_sdk
from tests.support.configs import TENANT_KEYS, config_tree, sync_redis
from tests.support.eventually import eventually
from tests.support.mock import MockControl
from tests.support.stack import Stack, layout_of, running_stack

PRICES = {"gpt-4o-mini": (0.15, 0.6), "gemini-2.5-flash": (0.3, 2.5)}
"""(input, output) list prices per million tokens, as ``config_tree`` sets them."""


@pytest.fixture
def stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    mock.settings(batch_delay_s=1.0)
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    for alias in PRICES:
        tree["models"][alias]["deployments"][0]["batch_api"] = True
    for tenant in tree["tenants"]:
        tenant["provider_batches"] = tenant["id"] == "acme"
    tree["provider_batches"] = {
        "min_room_s": 10,
        "live_reserve_s": 5,
        "collect_s": 0.5,
        "poll_s": 0.3,
        "cancel_wait_s": 5,
        "submit_wait_s": 5,
    }
    tree["pools"] = {"openai": {"concurrency": 32}, "gemini": {"concurrency": 32}}
    with running_stack(tmp_path, tree, ["openai", "gemini"]) as s:
        s.start_control()
        yield s


def chat_calls(mock: MockControl) -> tuple[Counter[str], Counter[str]]:
    """Each prompt's answers from the mock: (run as a provider batch's line, run live)."""
    batched: Counter[str] = Counter()
    live: Counter[str] = Counter()
    for r in mock.requests():
        body = r.get("body") or {}
        prompt = _prompt(body)
        if prompt is None or r.get("status") != 200:
            continue
        (batched if r.get("batch") else live)[prompt] += 1
    return batched, live


def _prompt(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    if messages := body.get("messages"):
        return str(messages[-1]["content"])
    if contents := body.get("contents"):
        return str(contents[-1]["parts"][0]["text"])
    return None


def usage_today(stack: Stack, pool: str, tenant: str = "acme") -> dict[str, str]:
    """The tenant's usage today, as the pool's shard counts it (all of it off a cluster)."""
    layout: KeySpace = layout_of(stack.tree)
    keys = layout.on(layout.shard_of_pool(pool))
    redis: SyncRedis = sync_redis(stack.tree["redis"]["url"], stack.tree["redis"].get("mode"))
    day = datetime.now(UTC).strftime("%Y%m%d")
    found: dict[str, str] = redis.hgetall(f"{keys.prefix}usage:{tenant}:{day}")  # type: ignore[assignment]
    redis.close()
    return found


def list_price(model: str, usage: dict[str, Any]) -> float:
    inp, out = PRICES[model]
    return (usage["prompt_tokens"] * inp + usage["completion_tokens"] * out) / 1_000_000


async def run_batch(stack: Stack, lines: list[dict[str, Any]], timeout: float) -> Any:
    sdk = openai_sdk(stack)
    uploaded = sdk.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await batch_reaches(sdk, batch.id, {"completed", "failed", "expired"}, timeout)
    assert done.status == "completed", done
    return done


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gemini-2.5-flash"])
async def test_a_2000_line_batch_runs_through_the_provider_batch_api_at_half_price(
    stack: Stack, mock: MockControl, model: str
) -> None:
    n = 2000
    lines = [batch_line(i, model=model) for i in range(n)]
    done = await run_batch(stack, lines, timeout=180)
    counts = done.request_counts
    assert (counts.total, counts.completed, counts.failed) == (n, n, 0)
    sdk = openai_sdk(stack)
    output = file_lines(sdk, done.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(f"req-{i}" for i in range(n))
    expected_cost = 0.0
    for line in output:
        i = int(line["custom_id"].removeprefix("req-"))
        body = line["response"]["body"]
        assert f"question {i}" in body["choices"][0]["message"]["content"]
        expected_cost += list_price(model, body["usage"]) / 2
    batched, live = chat_calls(mock)
    assert sum(batched.values()) == n, "every line ran as a provider batch's line"
    assert not live, f"no line ran live: {live.most_common(3)}"
    assert set(batched.values()) == {1}, "and each once"
    usage = usage_today(stack, "openai" if model == "gpt-4o-mini" else "gemini")
    assert int(usage["requests"]) == n
    assert float(usage["cost_usd"]) == pytest.approx(expected_cost, rel=1e-6)


async def jobs_of(stack: Stack, tenant: str = "acme") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    headers = {"authorization": f"Bearer {TENANT_KEYS[tenant]}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers) as http:
        after = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            page = (await http.get("/v1/jobs", params=params)).json()
            out += page["data"]
            if not page["has_more"]:
                return out
            after = page["last_id"]


@pytest.mark.parametrize("fault", ["expire", "fail", "line_errors"])
async def test_a_provider_batch_that_fails_halfway_leaves_every_line_done_exactly_once(
    stack: Stack, mock: MockControl, fault: str
) -> None:
    """Expired after half its lines, failed as a whole, or with every other line a 500: what
    the batch answered stands, the rest runs live, and no line runs twice to its end."""
    rule: dict[str, Any] = {"fault": fault}
    if fault == "expire":
        rule["fraction"] = 0.5
    if fault == "line_errors":
        rule.update(every=2, status=500)
    mock.batch_fault(**rule)
    n = 200
    lines = [batch_line(i, model="gpt-4o-mini") for i in range(n)]
    done = await run_batch(stack, lines, timeout=120)
    assert (done.request_counts.completed, done.request_counts.failed) == (n, 0)
    batched, live = chat_calls(mock)
    answered = {p for p, c in batched.items() if c}
    if fault == "line_errors":
        # a line the batch answered with a 500 ran there and failed; its live run is its end
        assert len(live) == n // 2
    else:
        assert not answered & set(live), "no line answered by the batch also ran live"
        assert len(answered) + len(live) == n
    if fault == "fail":
        assert not batched
    if fault == "expire":
        assert len(answered) == n // 2
    assert set(live.values()) <= {1}, "each live line ran once"
    executions = Counter(job["execution"] for job in await jobs_of(stack))
    assert sum(executions.values()) == n
    assert executions["live"] == len(live)


async def test_a_provider_batch_running_late_is_cut_off_and_its_rest_runs_live(
    stack: Stack, mock: MockControl
) -> None:
    """Native jobs with a deadline 12 s away (cutoff 7 s away: the live reserve is 5 s) meet a
    batch that would take 20 s: at the cutoff the batch is cancelled, what it ran is kept and
    the rest runs live, each job once and before its deadline."""
    mock.settings(batch_delay_s=20.0)
    n = 40
    deadline = time.time() + 12
    headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers) as http:
        ids = []
        for i in range(n):
            body = {
                "endpoint": "/v1/chat/completions",
                "deadline": deadline,
                "body": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"late {i}"}],
                },
            }
            answer = await http.post("/v1/jobs", json=body)
            assert answer.status_code == 202, answer.text
            assert answer.json()["execution"] == "provider_batch"
            ids.append(answer.json()["id"])

        async def all_ended() -> list[dict[str, Any]]:
            jobs = [(await http.get(f"/v1/jobs/{job_id}")).json() for job_id in ids]
            assert all(j["status"] == "succeeded" for j in jobs), Counter(j["status"] for j in jobs)
            return jobs

        jobs = await eventually(all_ended, what="every job succeeded", timeout=30)
    assert all(j["finished_at"] <= deadline for j in jobs), "each before its deadline"
    batched, live = chat_calls(mock)
    prompts = {f"late {i}" for i in range(n)}
    assert set(batched) | set(live) == prompts
    assert not set(batched) & set(live), "no job ran both in the batch and live"
    assert set(live.values()) <= {1}
    assert live, "the batch was cut off before it answered everything"
    by_execution = Counter(j["execution"] for j in jobs)
    assert by_execution["live"] == len(live)
    assert by_execution["provider_batch"] == len(batched)


async def test_tenants_not_opted_in_and_jobs_without_room_go_live(stack: Stack) -> None:
    async def submit(tenant: str, deadline: float | None) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {TENANT_KEYS[tenant]}"}
        body: dict[str, Any] = {
            "endpoint": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        }
        if deadline is not None:
            body["deadline"] = deadline
        async with httpx.AsyncClient(base_url=stack.url, headers=headers) as http:
            answer = await http.post("/v1/jobs", json=body)
            assert answer.status_code == 202, answer.text
            found: dict[str, Any] = answer.json()
            return found

    far = time.time() + 3600
    assert (await submit("globex", far))["execution"] == "live", "globex has not opted in"
    assert (await submit("acme", time.time() + 5))["execution"] == "live", "5 s < min_room_s"
    assert (await submit("acme", None))["execution"] == "live", "no deadline: wanted now"
    parked = await submit("acme", far)
    assert parked["execution"] == "provider_batch"
    assert "queue_position" not in parked
    headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers) as http:
        listed = (await http.get("/v1/models")).json()["data"]
    says = {m["id"]: m["anygate"]["batch_api"] for m in listed}
    assert says["gpt-4o-mini"] is True
    assert says["gemini-2.5-flash"] is True
    assert says["text-embedding-3-small"] is False, "its deployment does not take batches"
