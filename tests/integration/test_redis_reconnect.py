"""No anygate process exits on a transient Redis error (docs/architecture.md, "Redis outages").

Each test runs its own Redis (AOF in a temp dir, a port of its own) so it can stop, kill and
pause it: started late, shut down, ``kill -9``-ed and restarted from its AOF, or frozen with
SIGSTOP for ten seconds. Every process must stay up, come back by itself, resume its work, and
say so in its log exactly once per outage: one warning when Redis goes, one info line when it
is back (never a line per retry).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.batches import batch_line, batch_reaches, file_lines, jsonl, openai_sdk
from tests.support.configs import config_tree
from tests.support.eventually import eventually
from tests.support.jobs import chat_job, submit
from tests.support.mock import MockControl
from tests.support.processes import ManagedProcess, free_port
from tests.support.stack import ANYGATE, Stack
from tests.support.webhooks import WebhookReceiver, refuse_while_refusing, webhook_receiver

LOST = "redis unreachable; reconnecting"
BACK = "redis reachable again"


def _log(proc: ManagedProcess) -> str:
    return proc.log_path.read_text(encoding="utf-8", errors="replace")


def _everyone(stack: Stack) -> list[ManagedProcess]:
    return [*(p for p, _url in stack.apis), *stack.workers, *stack.controls]


def _assert_all_running(stack: Stack) -> None:
    for proc in _everyone(stack):
        assert proc.running, f"process {proc.pid} exited:\n{proc.log_tail()}"


async def _outages_logged(proc: ManagedProcess, outages: int) -> None:
    """One warning per outage and one line when Redis is back (once it has answered for a
    second), not a line per retry."""

    def counts() -> tuple[int, int]:
        text = _log(proc)
        return text.count(LOST), text.count(BACK)

    try:
        await eventually(lambda: counts() == (outages, outages), timeout=10)
    except AssertionError:
        raise AssertionError(f"{counts()} != {(outages, outages)}\n{proc.log_tail(60)}") from None


def _assert_no_traceback(proc: ManagedProcess) -> None:
    assert "Traceback" not in _log(proc), proc.log_tail(80)


@contextlib.contextmanager
def _own_redis(tmp_path: Path, *, started: bool = True) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), aof=True)
    if started:
        server.start()
    try:
        yield server
    finally:
        server.stop()


def _tree(server: EmbeddedRedis, tmp_path: Path, mock: MockControl) -> dict[str, Any]:
    secret = tmp_path / "webhook.secret"
    secret.write_text(base64.b64encode(b"w" * 24).decode())
    tree = config_tree(server.url, "reconnect", mock_root=mock.url)
    tree["security"] = {"webhook_secret": f"file:{secret}"}
    return tree


async def _control_ticks_again(server: EmbeddedRedis, timeout: float = 20.0) -> None:
    """The control plane's batch tick writes ``control:ticked``: delete it, wait for it."""
    key = "ag:{reconnect}:control:ticked"
    async with _client(server) as r:
        await r.delete(key)
        await eventually(lambda: r.exists(key), timeout=timeout)


@contextlib.asynccontextmanager
async def _client(server: EmbeddedRedis) -> Any:
    from redis.asyncio import Redis  # noqa: PLC0415 - only these helpers talk to Redis directly

    client = Redis.from_url(server.url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def _job_with_webhook(stack: Stack, hooks: WebhookReceiver) -> str:
    async with stack.client() as client:
        job = chat_job("tell me when you are done")
        job["webhook_url"] = hooks.url
        accepted: str = (await submit(client, job))["id"]
    return accepted


async def test_control_rides_out_a_redis_shutdown_and_a_kill_then_finishes_a_batch_and_a_webhook(
    tmp_path: Path, mock: MockControl
) -> None:
    """arq let the ``ConnectionError`` of a Redis restart escape and ``anygate control`` exited:
    batches, webhooks and pruning stopped, silently. Now the control plane stays up through a
    shutdown and a ``kill -9`` of Redis: the batch that was running completes (each line
    exactly once), a webhook delivery waiting in arq's queue for its retry is delivered after
    the restart, and a job that ends after both gets its webhook."""
    mock.settings(latency_ms=20)
    with (
        _own_redis(tmp_path) as server,
        webhook_receiver(refuse_while_refusing, refusing=True) as hooks,
    ):
        stack = Stack(tmp_path, _tree(server, tmp_path, mock))
        try:
            stack.start_api()
            stack.start_worker(pool="openai", concurrency=16)
            control = stack.start_control()
            sdk = openai_sdk(stack)
            n = 300
            lines = [batch_line(i, "gpt-4o-mini") for i in range(n)]
            uploaded = sdk.files.create(file=("r.jsonl", jsonl(lines)), purpose="batch")
            batch = sdk.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
            )
            await batch_reaches(sdk, batch.id, {"in_progress"}, timeout=20)
            early = await _job_with_webhook(stack, hooks)
            await eventually(lambda: any(d.subject == early for d in hooks.seen), timeout=20)

            for outages, hard in ((1, False), (2, True)):  # shutdown; kill -9 (AOF restart)
                server.stop(hard=hard)
                await asyncio.sleep(2.5)  # the control plane polls arq's queue twice a second
                assert control.running, f"control exited:\n{control.log_tail()}"
                server.start()
                await _control_ticks_again(server)
                await _outages_logged(control, outages)
                if outages == 1:  # the refused delivery's retry is due after the restart
                    hooks.refusing = False
                    await eventually(lambda: hooks.delivered(early), timeout=30)

            done = await batch_reaches(sdk, batch.id, {"completed", "failed"}, timeout=40)
            assert done.status == "completed"
            ids = [o["custom_id"] for o in file_lines(sdk, done.output_file_id)]
            ids += [e["custom_id"] for e in file_lines(sdk, done.error_file_id)]
            assert sorted(ids) == sorted(f"req-{i}" for i in range(n)), "each line exactly once"

            late = await _job_with_webhook(stack, hooks)
            await eventually(lambda: hooks.delivered(late), timeout=20)
            for job_id in (early, late):
                mine = {(d.delivery_id, d.event) for d in hooks.seen if d.subject == job_id}
                assert mine == {(f"dlv_{job_id}", "job.succeeded")}, hooks.seen
            _assert_all_running(stack)
        finally:
            stack.stop()


def _spawn(stack: Stack, *args: str) -> ManagedProcess:
    """Start a process without waiting for it to become ready (Redis is not there yet)."""
    return ManagedProcess.start([*ANYGATE, *args], env=stack.env)


async def test_every_process_started_before_redis_waits_for_it_and_then_serves(
    tmp_path: Path, mock: MockControl
) -> None:
    """An API, a worker and the control plane started while Redis is down stay up: the API
    answers ``/healthz`` at once, ``/readyz`` and every request 503 with Retry-After until
    Redis is there and its start-up work is done; all three then serve."""
    with _own_redis(tmp_path, started=False) as server:
        stack = Stack(tmp_path, config_tree(server.url, "reconnect", mock_root=mock.url))
        try:
            api_port = free_port()
            api = _spawn(stack, "api", "--port", str(api_port))
            stack.apis.append((api, f"http://127.0.0.1:{api_port}"))
            worker = _spawn(stack, "worker", "--pool", "openai", "--concurrency", "4")
            stack.workers.append(worker)
            stack.worker_pool[worker.pid] = "openai"
            stack.controls.append(_spawn(stack, "control"))
            spawned = time.monotonic()
            async with stack.client() as client:
                await eventually(lambda: _answers(client, "/healthz"), timeout=20)
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.headers["retry-after"] == "1"
                refused = await client.post("/v1/jobs", json=chat_job())
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "1"
                assert refused.json()["error"]["code"] == "service_unavailable"
                # arq gives up after five one-second connection retries; wait past that.
                await asyncio.sleep(max(0.0, 7.0 - (time.monotonic() - spawned)))
                _assert_all_running(stack)

                server.start()
                await eventually(lambda: _answers(client, "/readyz"), timeout=15)
                await eventually(lambda: stack.registered_workers("openai") == 1, timeout=15)
                await _control_ticks_again(server)
                accepted = await submit(client, chat_job("are you there?"))
                done = await client.get(f"/v1/jobs/{accepted['id']}", params={"wait": 10})
                assert done.json()["status"] == "succeeded", done.text
            _assert_all_running(stack)
            for proc in _everyone(stack):
                await _outages_logged(proc, 1)
                _assert_no_traceback(proc)
        finally:
            stack.stop()


async def _answers(client: httpx.AsyncClient, path: str) -> bool:
    try:
        return (await client.get(path)).status_code == 200
    except httpx.TransportError:
        return False


async def test_a_ten_second_redis_pause_kills_no_process(tmp_path: Path, mock: MockControl) -> None:
    """Redis frozen (SIGSTOP) for 10 s under a running stack: every process is still up after
    SIGCONT, logged no traceback but one warning and one line when Redis was back, and serves
    again: a job completes, the control plane ticks."""
    with _own_redis(tmp_path) as server:
        stack = Stack(tmp_path, config_tree(server.url, "reconnect", mock_root=mock.url))
        try:
            stack.start_api()
            stack.start_worker(pool="openai", concurrency=4)
            stack.start_control()
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(10)  # the point: the length of Redis's pause
                _assert_all_running(stack)
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            async with stack.client() as client:
                await eventually(lambda: _answers(client, "/readyz"), timeout=15)
                await _control_ticks_again(server)
                accepted = await submit(client, chat_job("after the pause"))
                done = await client.get(f"/v1/jobs/{accepted['id']}", params={"wait": 15})
                assert done.json()["status"] == "succeeded", done.text
            _assert_all_running(stack)
            for proc in _everyone(stack):
                await _outages_logged(proc, 1)  # each noticed, even an idle one
                _assert_no_traceback(proc)
        finally:
            stack.stop()
