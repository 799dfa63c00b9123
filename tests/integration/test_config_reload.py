"""Config reload end to end (docs/operations.md#reloading-configuration): a real stack (API,
a worker per pool, control, the mock provider) under a steady load of jobs takes a new route on
SIGHUP, processes one after another, without losing or failing a job; a broken file is refused
by every process, with a warning naming the field, and the old config keeps serving; with
``--watch-config`` a change of the file alone is enough."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import wait_until
from tests.support.admin import ADMIN_KEY, admin_tree
from tests.support.eventually import eventually
from tests.support.jobs import read_sse
from tests.support.mock import MockControl
from tests.support.processes import ManagedProcess, free_port
from tests.support.stack import Stack

ANYGATE = [sys.executable, "-m", "anygate.ops"]
CHAT = "/v1/chat/completions"
NEW_TARGET = "reload-target"
NEW_ALIAS = "brand-new"
NEW_ALIAS_UPSTREAM = "brand-new-upstream"


def job(model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "endpoint": CHAT,
        "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
    }


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = httpx.get(
        f"http://127.0.0.1:{port}/metrics",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    answer.raise_for_status()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


class ReloadStack:
    """A ``Stack`` whose processes are started with a metrics port each and, optionally,
    ``--watch-config``; workers take their slots from ``pools`` (no ``--concurrency``)."""

    def __init__(self, stack: Stack, *, watch: bool = False) -> None:
        self.stack = stack
        self.flags = ["--watch-config"] if watch else []
        self.metrics: dict[str, int] = {}
        """process name → the port its series are read on (the API: its own /metrics)."""
        self.procs: dict[str, ManagedProcess] = {}

    def _started(self, name: str, proc: ManagedProcess) -> ManagedProcess:
        self.stack.started.append(proc)
        self.procs[name] = proc
        return proc

    def start_api(self) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = ManagedProcess.start(
            [*ANYGATE, "api", "--port", str(port), *self.flags],
            env=self.stack.env,
            ready_url=f"{url}/readyz",
        )
        self.stack.apis.append((proc, url))
        self.metrics["api"] = port
        self._started("api", proc)

    def start_worker(self, pool: str) -> None:
        port = free_port()
        before = self.stack.registered_workers(pool)
        proc = ManagedProcess.start(
            [*ANYGATE, "worker", "--pool", pool, "--metrics-port", str(port), *self.flags],
            env=self.stack.env,
        )
        self._started(f"worker-{pool}", proc)
        wait_until(
            lambda: None if self.stack.registered_workers(pool) > before else "not registered",
            what=f"a worker of pool {pool}",
            watch=[proc.child],
            timeout=20,
        )
        self.stack.workers.append(proc)
        self.stack.worker_pool[proc.pid] = pool
        self.metrics[f"worker-{pool}"] = port

    def start_control(self) -> None:
        port = free_port()
        proc = ManagedProcess.start(
            [*ANYGATE, "control", "--metrics-port", str(port), *self.flags], env=self.stack.env
        )
        self._started("control", proc)
        self.stack.controls.append(proc)
        self.metrics["control"] = port

    def write(self, content: dict[str, Any] | str) -> None:
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        # as an editor saves: a new file renamed over the old one
        tmp = self.stack.config_path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.stack.config_path)

    def hup(self, *names: str) -> None:
        for name in names or tuple(self.procs):
            self.procs[name].send_signal(signal.SIGHUP)

    def value(self, name: str, series: str, **labels: str) -> float:
        samples = scrape(self.metrics[name])
        return samples.get((series, frozenset(labels.items())), 0.0)

    async def until_all(self, series: str, want: float, **labels: str) -> None:
        for name in self.procs:
            await eventually(
                lambda name=name: self.value(name, series, **labels) == want,  # type: ignore[misc]
                what=f"{name}: {series}{labels or ''} == {want}",
                timeout=20,
            )

    def log(self, name: str) -> str:
        return self.procs[name].log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def reload_stack(tmp_path: Path, tree: dict[str, Any], *, watch: bool = False) -> Iterator[Any]:
    stack = Stack(tmp_path, tree)
    rs = ReloadStack(stack, watch=watch)
    try:
        yield rs
    except BaseException:
        stack.stop()
        raise
    stack.stop()
    stack.check_logs()


def base_tree(redis_server: EmbeddedRedis, namespace: str, mock: MockControl) -> dict[str, Any]:
    tree = admin_tree(redis_server.url, namespace, mock.url)
    tree["pools"] = {"openai": {"concurrency": 4}}
    tree["metrics"] = {"api_access": "admin"}
    return tree


def rerouted(tree: dict[str, Any]) -> dict[str, Any]:
    """``gpt-4o-mini`` now served by another upstream model, a new alias, more slots."""
    new = copy.deepcopy(tree)
    new["models"]["gpt-4o-mini"]["deployments"][0]["model"] = NEW_TARGET
    new["models"][NEW_ALIAS] = {
        "deployments": [{"provider": "openai", "model": NEW_ALIAS_UPSTREAM}]
    }
    new["pools"]["openai"]["concurrency"] = 6
    return new


class Load:
    """Jobs submitted at a steady pace until stopped; every id kept, with the phase it was
    submitted in."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.phase = "before"
        self.jobs: list[tuple[str, str]] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            answer = await self.client.post("/v1/jobs", json=job())
            assert answer.status_code == 202, answer.text
            self.jobs.append((answer.json()["id"], self.phase))
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


async def outcome(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(6):
        answer = await client.get(f"/v1/jobs/{job_id}?wait=10")
        body: dict[str, Any] = answer.json()
        if body["status"] in {"succeeded", "failed", "cancelled", "expired"}:
            return body
    raise AssertionError(f"job {job_id} did not end: {body}")


def served_by(body: dict[str, Any]) -> str:
    return str(body["result"]["model"])


async def test_sighup_reroutes_under_load_and_a_broken_file_is_refused(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> None:
    mock.settings(latency_ms=120)  # jobs are in flight when the config changes
    tree = base_tree(redis_server, namespace, mock)
    with reload_stack(tmp_path, tree) as rs:
        await asyncio.wait_for(sighup_under_load(rs, tree), 120)


async def sighup_under_load(rs: ReloadStack, tree: dict[str, Any]) -> None:
    rs.start_api()
    rs.start_worker("openai")
    rs.start_worker("gemini")
    rs.start_control()
    await rs.until_all("anygate_config_generation", 1)
    async with rs.stack.client() as client:
        load = Load(client)
        pump = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)

        # The API first: for a moment it plans routes the workers do not know yet.
        rs.write(rerouted(tree))
        load.phase = "during"
        rs.hup("api")
        await eventually(lambda: rs.value("api", "anygate_config_generation") == 2)
        early = await client.post("/v1/jobs", json=job(NEW_ALIAS))
        assert early.status_code == 202, early.text
        await asyncio.sleep(1.5)  # the openai worker meets it and puts it back
        rs.hup("worker-openai", "worker-gemini", "control")
        await rs.until_all("anygate_config_generation", 2)
        await rs.until_all("anygate_config_reloads_total", 1, outcome="applied")
        load.phase = "after"
        await asyncio.sleep(1.0)
        load.stop()
        await pump

        outcomes = {jid: await outcome(client, jid) for jid, _phase in load.jobs}
        failed = {jid: o for jid, o in outcomes.items() if o["status"] != "succeeded"}
        assert not failed, failed
        phases = {phase for _jid, phase in load.jobs}
        assert phases == {"before", "during", "after"}
        after = [outcomes[jid] for jid, phase in load.jobs if phase == "after"]
        before = [outcomes[jid] for jid, phase in load.jobs if phase == "before"]
        assert {served_by(o) for o in after} == {NEW_TARGET}
        assert "gpt-4o-mini" in {served_by(o) for o in before}

        # the job that met a worker without its route waited for it and then ran
        early_outcome = await outcome(client, early.json()["id"])
        assert early_outcome["status"] == "succeeded", early_outcome
        assert served_by(early_outcome) == NEW_ALIAS_UPSTREAM
        events = await read_sse(client, early.json()["id"])
        assert any("config_pending" in data for _id, kind, data in events if kind == "retry")

        # the pool's new concurrency took effect in its worker, without a restart
        assert rs.value("worker-openai", "anygate_worker_slots", pool="openai") == 6
        ready = (await client.get("/readyz")).json()
        assert ready["config_generation"] == 2

        # A broken file, then an invalid field: refused everywhere, the old config serves.
        rs.write("models: [unclosed\n")
        rs.hup()
        await rs.until_all("anygate_config_reloads_total", 1, outcome="refused")
        broken = rerouted(tree)
        broken["pools"]["openai"]["concurrency"] = 0
        rs.write(broken)
        rs.hup()
        await rs.until_all("anygate_config_reloads_total", 2, outcome="refused")
        await rs.until_all("anygate_config_generation", 2)
        for name in rs.procs:
            log = rs.log(name)
            assert "config reload refused" in log, name
            assert "not valid YAML" in log, name
            assert "pools.openai.concurrency" in log, name
        ids = [(await client.post("/v1/jobs", json=job())).json()["id"] for _ in range(5)]
        served = [await outcome(client, jid) for jid in ids]
        assert {o["status"] for o in served} == {"succeeded"}
        assert {served_by(o) for o in served} == {NEW_TARGET}
        assert (await client.get("/readyz")).json()["config_hash"] == ready["config_hash"]


async def test_watch_config_reloads_on_a_file_change_alone(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> None:
    tree = base_tree(redis_server, namespace, mock)
    with reload_stack(tmp_path, tree, watch=True) as rs:
        await asyncio.wait_for(file_change_alone(rs, tree), 60)


async def file_change_alone(rs: ReloadStack, tree: dict[str, Any]) -> None:
    rs.start_api()
    rs.start_worker("openai")
    rs.start_control()
    await rs.until_all("anygate_config_generation", 1)
    async with rs.stack.client() as client:
        unknown = await client.post("/v1/jobs", json=job(NEW_ALIAS))
        assert unknown.status_code == 404, unknown.text
        rs.write(rerouted(tree))  # no signal
        await rs.until_all("anygate_config_generation", 2)
        created = await client.post("/v1/jobs", json=job(NEW_ALIAS))
        assert created.status_code == 202, created.text
        done = await outcome(client, created.json()["id"])
        assert done["status"] == "succeeded", done
        assert served_by(done) == NEW_ALIAS_UPSTREAM
        assert rs.value("worker-openai", "anygate_worker_slots", pool="openai") == 6


def runs(dev: ManagedProcess, event: str) -> dict[str, str]:
    """process → the config hash of its last ``event`` line in ``anygate dev``'s log."""
    out = {}
    for line in dev.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if f'"{event}"' not in line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # two children's lines interleaved in dev's one log
            continue
        out[record["process"]] = record["hash"]
    return out


def test_anygate_dev_passes_sighup_on_to_every_process(tmp_path: Path) -> None:
    """``anygate dev``: one SIGHUP to it, and the API, both workers and control reload; the new
    alias is then served."""
    port = free_port()
    data_dir = tmp_path / ".anygate"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYGATE")}
    env.pop("OPENAI_API_KEY", None)
    env.pop("GEMINI_API_KEY", None)
    url = f"http://127.0.0.1:{port}"
    argv = [*ANYGATE, "dev", "--port", str(port), "--data-dir", str(data_dir)]
    with ManagedProcess.start(argv, env=env, ready_url=f"{url}/readyz", timeout=60) as dev:
        # dev.env is written with the banner, once the API, both workers and control are ready
        wait_until(
            lambda: None if (data_dir / "dev.env").exists() else "no banner yet",
            what="anygate dev ready (API, 2 workers, control)",
            watch=[dev.child],
            timeout=60,
        )
        assert len(runs(dev, "config loaded")) == 4
        config_path = data_dir / "config.yaml"
        tree = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        tree["models"][NEW_ALIAS] = {
            "deployments": [{"provider": "openai", "model": NEW_ALIAS_UPSTREAM}]
        }
        config_path.write_text(yaml.safe_dump(tree), encoding="utf-8")
        dev.send_signal(signal.SIGHUP)
        wait_until(
            lambda: None if len(runs(dev, "config reloaded")) == 4 else "not yet",
            what="4 processes (api, 2 workers, control) reloaded",
            watch=[dev.child],
            timeout=20,
        )
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["config_generation"] == 2
        assert set(runs(dev, "config reloaded").values()) == {ready["config_hash"]}
        key = next(
            line.partition("=")[2]
            for line in (data_dir / "dev.env").read_text().splitlines()
            if line.startswith("export ANYGATE_KEY=")
        )
        headers = {"authorization": f"Bearer {key}"}
        created = httpx.post(f"{url}/v1/jobs", headers=headers, json=job(NEW_ALIAS))
        assert created.status_code == 202, created.text
        done = httpx.get(
            f"{url}/v1/jobs/{created.json()['id']}",
            headers=headers,
            params={"wait": 20},
            timeout=30,
        ).json()
        assert done["status"] == "succeeded", done
        dev.terminate(timeout=40)
