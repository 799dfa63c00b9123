"""The Kubernetes manifests (``ops/k8s``, docs/deploy.md) as ``kubectl kustomize`` renders the
base and each overlay: every object valid against its schema, and the properties an operator
relies on checked against the code they describe (the CLI's options, the worker's drain, the
routes, the configuration model, the metric catalogue)."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from anygate.api.health import ROUTES
from anygate.config import AnygateConfig, load_config
from anygate.ops.cli import main as cli
from anygate.workers.control_runner import CLOSE_GRACE_S
from anygate.workers.worker import WorkerSettings
from tests.deploy.dockerfile import final_user
from tests.deploy.manifests import (
    K8S,
    TARGETS,
    Obj,
    Rendered,
    container,
    containers,
    env_names,
    kubectl_problem,
    option,
    pod_spec,
    render,
    selects,
)
from tests.deploy.validation import validate_object
from tests.support.metric_catalogue import CATALOGUE
from tests.support.promql_queries import PROMETHEUS_CONFIG, selectors

pytestmark = pytest.mark.skipif(kubectl_problem() is not None, reason=str(kubectl_problem()))

KEDA_PROMETHEUS_METADATA = {
    "serverAddress",
    "query",
    "queryParameters",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "unsafeSsl",
    "awsRegion",
    "timeout",
    "identityOwner",
}
"""The metadata KEDA's Prometheus scaler reads (pkg/scalers/prometheus_scaler.go): a trigger's
metadata is a free map in the CRD, so a misspelt key would pass its schema and be ignored."""


@pytest.fixture(params=TARGETS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return render(request.param)


def _config(rendered: Rendered, tmp_path: Path) -> AnygateConfig:
    """The rendered ConfigMap's YAML through the loader every process uses."""
    path = tmp_path / "config.yaml"
    path.write_text(rendered.config_text(), encoding="utf-8")
    return load_config(path, environ={})


def _params(workload: Obj) -> dict[str, Any]:
    """The container's args parsed by the real ``anygate`` command line: an option it does not
    have, or a bad value, fails here as it would in the pod."""
    args = list(container(workload)["args"])
    command = cli.commands[args[0]]
    with click.Context(cli) as parent:
        return dict(command.make_context(args[0], args[1:], parent=parent).params)


def _port(workload: Obj, name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    ports = {p["name"]: p["containerPort"] for p in container(workload).get("ports", [])}
    assert name_or_number in ports, f"{workload['metadata']['name']}: no port {name_or_number}"
    return int(ports[name_or_number])


def _worker_default(field: str) -> float:
    """A ``WorkerSettings`` default (a slotted dataclass: read through its fields)."""
    (default,) = [f.default for f in dataclasses.fields(WorkerSettings) if f.name == field]
    return float(default)  # type: ignore[arg-type]


def _pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


# --- schemas ------------------------------------------------------------------------------


def test_every_rendered_object_matches_its_schema(rendered: Rendered) -> None:
    assert rendered.objects
    for obj in rendered.objects:
        validate_object(obj)


def test_the_secret_example_is_valid_and_holds_only_placeholders(rendered: Rendered) -> None:
    example = yaml.safe_load((K8S / "secret.example.yaml").read_text(encoding="utf-8"))
    validate_object(example)
    assert all("REPLACE-ME" in value for value in example["stringData"].values())
    # every key a Deployment reads is in the example (and in dev's generated Secret)
    secrets = {s["metadata"]["name"]: set(s.get("data", {})) for s in rendered.of_kind("Secret")}
    for workload in rendered.workloads():
        for env in env_names(workload).values():
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is None:
                continue
            assert ref["key"] in example["stringData"], ref
            if secrets:  # dev generates its Secret (name hashed); base/production expect one
                assert ref["name"] in secrets, ref
                assert ref["key"] in secrets[ref["name"]], ref
            else:
                assert ref["name"] == example["metadata"]["name"], ref


# --- hardening ----------------------------------------------------------------------------


def test_every_container_is_non_root_read_only_and_unprivileged(rendered: Rendered) -> None:
    image_user = final_user()
    for workload in rendered.workloads():
        pod = pod_spec(workload)
        pod_sc = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        for c in containers(workload):
            where = f"{rendered.target}: {workload['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            assert isinstance(uid, int), where
            assert uid != 0, where
            if c["image"].split(":")[0].endswith("anygate"):
                assert str(uid) == image_user.split(":")[0], f"{where}: not the image's user"
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", where
            assert c.get("livenessProbe"), f"{where}: no liveness probe"


# --- probes and grace periods -------------------------------------------------------------


def test_the_api_is_probed_on_healthz_and_readyz_where_it_listens(rendered: Rendered) -> None:
    routes = {route.path for route in ROUTES}  # type: ignore[attr-defined]
    (api,) = rendered.anygate_deployments("api")
    params = _params(api)
    c = container(api)
    assert params["host"] == "0.0.0.0"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path
        assert path in routes
        assert _port(api, get["port"]) == params["port"]


def test_workers_and_control_are_probed_on_their_metrics_listener(rendered: Rendered) -> None:
    """They serve no HTTP but the metrics listener: it must be on, reachable from the kubelet
    (not bound to loopback) and on the port the probe asks."""
    for workload in rendered.anygate_deployments("worker") + rendered.anygate_deployments(
        "control"
    ):
        params = _params(workload)
        name = workload["metadata"]["name"]
        assert params["metrics_port"] is not None, name
        assert params["metrics_host"] == "0.0.0.0", name
        get = container(workload)["livenessProbe"]["httpGet"]
        assert get["path"] == "/metrics", name
        assert _port(workload, get["port"]) == params["metrics_port"], name


def test_a_worker_pod_outlives_its_drain(rendered: Rendered) -> None:
    """SIGTERM → running jobs get --shutdown-grace, then up to handback_s to go back to the
    queue; a SIGKILL before that leaves them to wait out their lease."""
    handback = _worker_default("handback_s")
    workers = rendered.anygate_deployments("worker")
    assert workers
    for worker in workers:
        drain = float(_params(worker)["shutdown_grace"])  # the CLI's default when not given
        grace = pod_spec(worker)["terminationGracePeriodSeconds"]
        assert grace > drain + handback, worker["metadata"]["name"]
    for control in rendered.anygate_deployments("control"):
        assert pod_spec(control)["terminationGracePeriodSeconds"] > CLOSE_GRACE_S


def test_the_cli_and_the_worker_agree_on_the_default_drain() -> None:
    option_default = next(
        p.default for p in cli.commands["worker"].params if p.name == "shutdown_grace"
    )
    assert option_default == _worker_default("shutdown_grace_s")


# --- configuration and secrets ------------------------------------------------------------


def _secret_refs(config: AnygateConfig, role: str, pool: str | None) -> set[str]:
    """The ``env:NAME`` references a process of ``role`` resolves (docs/operations.md)."""
    refs = []
    if role == "api":
        refs += list(config.admin_api_keys)
        refs += [ref for tenant in config.tenants for ref in tenant.api_keys]
        refs.append(config.security.encryption_key)
    elif role == "worker":
        assert pool is not None
        refs += [config.providers[pool].api_key, config.security.encryption_key]
    elif role == "control":
        refs.append(config.security.webhook_secret)
    return {ref.target for ref in refs if ref is not None and ref.scheme == "env"}


def test_the_config_map_is_a_valid_config_and_each_process_gets_its_secrets(
    rendered: Rendered, tmp_path: Path
) -> None:
    config = _config(rendered, tmp_path)
    provider_keys = {
        p.api_key.target
        for p in config.providers.values()
        if p.api_key and p.api_key.scheme == "env"
    }
    for role in ("api", "worker", "control"):
        for workload in rendered.anygate_deployments(role):
            env = env_names(workload)
            name = workload["metadata"]["name"]
            pool = option(list(container(workload)["args"]), "--pool")
            # the base expects an external Redis: its URL (it may hold a password) from the Secret
            assert "secretKeyRef" in env["ANYGATE__REDIS__URL"]["valueFrom"], name
            missing = _secret_refs(config, role, pool) - set(env)
            assert not missing, f"{name} resolves {sorted(missing)} but is not given them"
            # a provider key goes only to the workers of its own pool
            own = _secret_refs(config, role, pool) & provider_keys
            assert not (provider_keys - own) & set(env), f"{name} gets another pool's key"
            # ANYGATE_CONFIG names the file mounted from the ConfigMap
            path = Path(env["ANYGATE_CONFIG"]["value"])
            mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
            volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
            volume = volumes[mounts[str(path.parent)]]
            assert volume["configMap"]["name"].startswith("anygate-config"), name


def test_the_base_expects_an_external_redis(rendered: Rendered) -> None:
    statefulsets = rendered.of_kind("StatefulSet")
    if rendered.target != "overlays/dev":
        assert not statefulsets
        assert not rendered.of_kind("Secret"), "real keys are made outside the manifests"
        return
    (redis,) = statefulsets
    (secret,) = rendered.of_kind("Secret")
    url = base64.b64decode(secret["data"]["redis-url"]).decode()
    assert url.startswith(f"redis://{redis['spec']['serviceName']}:6379/")
    assert "--appendonly" in container(redis)["args"]


# --- scaling ------------------------------------------------------------------------------


def test_one_scaled_object_per_pool_on_that_pools_backlog(
    rendered: Rendered, tmp_path: Path
) -> None:
    config = _config(rendered, tmp_path)
    workers = {
        option(list(container(w)["args"]), "--pool"): w
        for w in rendered.anygate_deployments("worker")
    }
    assert set(workers) == set(config.providers), "one worker Deployment per pool"
    scaled = rendered.of_kind("ScaledObject")
    targets = [s["spec"]["scaleTargetRef"]["name"] for s in scaled]
    assert sorted(targets) == sorted(w["metadata"]["name"] for w in workers.values())
    metrics = {m.name: m for m in CATALOGUE}
    for pool, worker in workers.items():
        (obj,) = [
            s for s in scaled if s["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
        ]
        spec = obj["spec"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        # the CRD's CEL rule, which JSON Schema cannot evaluate
        assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus"
        meta = trigger["metadata"]
        assert set(meta) <= KEDA_PROMETHEUS_METADATA
        found = selectors(meta["query"])
        names = {s.name for s in found}
        assert "anygate_queue_depth" in names, "the pool's queue, from the cluster series"
        for selector in found:
            assert selector.name in metrics, selector.name
            assert ("pool", "=", pool) in selector.matchers, f"{selector.name} not on pool {pool}"
        # queue depth is exported by control only: one value per control process, never summed
        depth = next(s for s in found if s.name == "anygate_queue_depth")
        assert depth.ancestors[0].op == "max"
        assert metrics["anygate_queue_depth"].exposed_by == {"control"}
        # one replica per pool's worth of slots
        slots = _params(worker)["concurrency"] or config.pool(pool).concurrency
        assert float(meta["threshold"]) == slots
        # no answer from Prometheus must not read as an empty queue
        assert meta["ignoreNullValues"] == "false"
        assert spec["fallback"]["replicas"] >= 1


def test_scale_to_zero_only_where_the_overlay_allows_it(rendered: Rendered) -> None:
    minimums = {
        s["metadata"]["name"]: s["spec"]["minReplicaCount"]
        for s in rendered.of_kind("ScaledObject")
    }
    assert minimums
    if rendered.target == "overlays/dev":
        assert set(minimums.values()) == {0}
    else:
        # every pool serves interactive jobs (each SDK call is one): never wait for a cold start
        assert min(minimums.values()) >= 1, minimums


def test_the_api_scales_on_cpu_and_control_runs_alone(rendered: Rendered) -> None:
    (api,) = rendered.anygate_deployments("api")
    (hpa,) = rendered.of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    assert "cpu" in container(api)["resources"]["requests"], "CPU utilisation needs a request"
    (control,) = rendered.anygate_deployments("control")
    assert control["spec"]["replicas"] == 1
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in rendered.of_kind("ScaledObject")}
    assert control["metadata"]["name"] not in scaled | {hpa["spec"]["scaleTargetRef"]["name"]}


def test_api_and_workers_have_disruption_budgets(rendered: Rendered) -> None:
    budgets = rendered.of_kind("PodDisruptionBudget")
    for workload in rendered.anygate_deployments("api") + rendered.anygate_deployments("worker"):
        labels = _pod_labels(workload)
        matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(matching) == 1, workload["metadata"]["name"]
        assert matching[0]["spec"].get("maxUnavailable", 0) >= 1, "a drain must be able to proceed"


# --- metrics ------------------------------------------------------------------------------


def test_the_service_monitor_scrapes_every_process_under_the_compose_job_names(
    rendered: Rendered, tmp_path: Path
) -> None:
    (monitor,) = rendered.of_kind("ServiceMonitor")
    spec = monitor["spec"]
    (endpoint,) = spec["endpoints"]
    services = [
        s
        for s in rendered.of_kind("Service")
        if selects(spec["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    compose_jobs = {j["job_name"] for j in prometheus["scrape_configs"]} - {"prometheus"}
    jobs = {s["metadata"]["labels"][spec["jobLabel"]] for s in services}
    assert jobs == compose_jobs, "the alert rules and the dashboard expect these job names"
    config = _config(rendered, tmp_path)
    for role in ("api", "worker", "control"):
        for workload in rendered.anygate_deployments(role):
            name = workload["metadata"]["name"]
            scraping = [
                s for s in services if selects(s["spec"]["selector"], _pod_labels(workload))
            ]
            assert len(scraping) == 1, f"{name} is scraped through {len(scraping)} Services"
            (port,) = [p for p in scraping[0]["spec"]["ports"] if p["name"] == endpoint["port"]]
            served = _port(workload, port["targetPort"])
            if role == "api":
                assert config.metrics.api_access == "port"
                assert config.metrics.api_port == served
            else:
                assert _params(workload)["metrics_port"] == served, name
