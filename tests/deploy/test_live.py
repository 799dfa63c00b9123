"""The production overlay's processes run for real (docs/deploy.md): each Deployment's container
args and environment, with its rendered ConfigMap, started against a real Redis (ports moved to
free ones on 127.0.0.1). Every probe the manifests declare answers 200 where they point, a real
Prometheus scraping the workers and control answers each pool's KEDA query with that pool's
backlog, and each process stops on SIGTERM within its pod's grace period.

Slow: it starts processes (and Prometheus, from Debian's ``prometheus`` package)."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import wait_http
from tests.deploy.manifests import Obj, container, kubectl_problem, pod_spec, render
from tests.support.processes import ManagedProcess, free_port
from tests.support.stack import ANYGATE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(kubectl_problem() is not None, reason=str(kubectl_problem())),
]

TARGET = "overlays/production"
PROMETHEUS = shutil.which("prometheus")
DEADLINE_S = 30.0
QUEUED = 2  # not 3: as many as the classes, which a wrong aggregation could count


@dataclass
class Pod:
    """One Deployment's container, running here: its container ports mapped to local ones."""

    deployment: Obj
    process: ManagedProcess
    ports: dict[int, int]

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    def url(self, port: str | int, path: str) -> str:
        if isinstance(port, str):
            named = {p["name"]: p["containerPort"] for p in container(self.deployment)["ports"]}
            port = named[port]
        return f"http://127.0.0.1:{self.ports[port]}{path}"


def _command(deployment: Obj, ports: dict[int, int]) -> list[str]:
    """The container's args, listening on 127.0.0.1 and the mapped ports instead."""
    args = [str(a) for a in container(deployment)["args"]]
    for i, arg in enumerate(args[:-1]):
        if arg in {"--port", "--metrics-port"}:
            args[i + 1] = str(ports[int(args[i + 1])])
        elif arg in {"--host", "--metrics-host"}:
            args[i + 1] = "127.0.0.1"
    return args


def _environment(deployment: Obj, config_path: Path, redis_url: str) -> dict[str, str]:
    """The container's env: plain values as they are, each Secret key a stand-in value."""
    env = {}
    for item in container(deployment).get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            env[item["name"]] = f"test-{item['valueFrom']['secretKeyRef']['key']}"
    env["ANYGATE_CONFIG"] = str(config_path)
    env["ANYGATE__REDIS__URL"] = redis_url
    return env


@pytest.fixture(scope="module")
def pods(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Pod]]:
    rendered = render(TARGET)
    config_path = tmp_path_factory.mktemp("k8s") / "config.yaml"
    config_path.write_text(rendered.config_text(), encoding="utf-8")
    namespace = f"k8s{int(time.time() * 1000) % 10**8}"
    started: dict[str, Pod] = {}
    try:
        for role in ("api", "worker", "control"):
            for deployment in rendered.anygate_deployments(role):
                ports = {p["containerPort"]: free_port() for p in container(deployment)["ports"]}
                env = _environment(deployment, config_path, redis_server.url)
                env["ANYGATE__REDIS__NAMESPACE"] = namespace
                env["ANYGATE__SERVER__HOST"] = "127.0.0.1"
                if role == "api":  # the metrics listener's port comes from the config
                    env["ANYGATE__METRICS__API_PORT"] = str(ports[9100])
                process = ManagedProcess.start([*ANYGATE, *_command(deployment, ports)], env=env)
                pod = Pod(deployment, process, ports)
                started[pod.name] = pod
        yield started
    finally:
        for pod in started.values():
            if pod.process.running:
                pod.process.kill()


def test_every_probe_answers_where_the_manifests_point(pods: dict[str, Pod]) -> None:
    probed = 0
    for pod in pods.values():
        c = container(pod.deployment)
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = c.get(kind, {}).get("httpGet")
            if get is None:
                continue
            wait_http(
                pod.url(get["port"], get["path"]),
                watch=[pod.process.child],
                timeout=DEADLINE_S,
                what=f"{pod.name} {kind}",
            )
            probed += 1
    assert probed >= 2 + len(pods) - 1  # the API's two, one for each other process


def _admin(api: Pod) -> httpx.Client:
    headers = {"authorization": "Bearer test-admin-key"}  # the stand-in for the Secret's key
    return httpx.Client(base_url=api.url("http", ""), headers=headers, timeout=10)


@pytest.fixture(scope="module")
def backlog(pods: dict[str, Pod]) -> str:
    """QUEUED jobs waiting in the openai pool (paused: no call leaves the machine)."""
    api = pods["anygate-api"]
    wait_http(api.url("http", "/readyz"), watch=[api.process.child], timeout=DEADLINE_S)
    with _admin(api) as admin:
        assert admin.post("/admin/tenants", json={"id": "k8s"}).status_code == 201
        key = admin.post("/admin/keys", json={"tenant": "k8s"}).json()["key"]
        assert admin.post("/admin/pools/openai/pause").status_code == 200
    job = {
        "endpoint": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    }
    with httpx.Client(base_url=api.url("http", ""), timeout=10) as client:
        for _ in range(QUEUED):
            answer = client.post("/v1/jobs", json=job, headers={"authorization": f"Bearer {key}"})
            assert answer.status_code == 202, answer.text
    return "openai"  # left paused: the namespace is this module's alone


@pytest.fixture
def prometheus(pods: dict[str, Pod], tmp_path: Path) -> Iterator[httpx.Client]:
    """A real Prometheus scraping every worker and control process's metrics port each second."""
    if PROMETHEUS is None:
        pytest.skip("needs prometheus (apt-get install prometheus; .ci/setup does it)")
    targets = [
        pod.url("metrics", "").removeprefix("http://")
        for pod in pods.values()
        if container(pod.deployment)["args"][0] in {"worker", "control"}
    ]
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "anygate", "static_configs": [{"targets": targets}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    url = f"http://127.0.0.1:{free_port()}"
    with (
        ManagedProcess.start(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            ready_url=f"{url}/-/ready",
            timeout=DEADLINE_S,
        ),
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


def _query(client: httpx.Client, promql: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/query", params={"query": promql}).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_each_pools_keda_query_reads_that_pools_backlog(
    pods: dict[str, Pod], backlog: str, prometheus: httpx.Client
) -> None:
    expected = {backlog: float(QUEUED)}
    scaled = render(TARGET).of_kind("ScaledObject")
    assert len(scaled) == 2
    deadline = time.monotonic() + DEADLINE_S
    for obj in scaled:
        (trigger,) = obj["spec"]["triggers"]
        pool = obj["metadata"]["labels"]["anygate.dev/pool"]
        want = expected.get(pool, 0.0)
        while True:
            result = _query(prometheus, trigger["metadata"]["query"])
            # one value, no labels: what KEDA reads (it refuses a vector of several)
            if len(result) == 1 and float(result[0]["value"][1]) == want:
                assert result[0]["metric"] == {}
                break
            assert time.monotonic() < deadline, f"{obj['metadata']['name']}: {result}, not {want}"
            time.sleep(0.5)


def test_each_process_stops_within_its_pods_grace_period(pods: dict[str, Pod]) -> None:
    for pod in pods.values():
        grace = float(pod_spec(pod.deployment)["terminationGracePeriodSeconds"])
        started = time.monotonic()
        pod.process.send_signal(signal.SIGTERM)
        code = pod.process.wait(timeout=grace)
        # uvicorn re-raises the signal once its graceful shutdown is done
        assert code in {0, -signal.SIGTERM}, f"{pod.name} exited {code}"
        assert time.monotonic() - started < grace
