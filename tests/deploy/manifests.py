"""The Kubernetes manifests of ``ops/k8s`` as ``kubectl kustomize`` renders them, with lookups
the tests share."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "ops" / "k8s"
TARGETS = ("base", "overlays/dev", "overlays/production")
MIN_KUSTOMIZE = (5, 0)
"""The kustomization files use ``labels`` with ``includeTemplates`` and ``patches`` with targets
by kind: kustomize 5, built into kubectl 1.27 and later."""

Obj = dict[str, Any]


@functools.cache
def kubectl_problem() -> str | None:
    """Why the manifests cannot be rendered here, or None when they can."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return "kubectl is not installed (Debian: kubernetes-client; .ci/setup installs it)"
    answer = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        kustomize = str(json.loads(answer.stdout)["kustomizeVersion"])
    except (ValueError, KeyError):
        return f"cannot tell kubectl's kustomize version: {answer.stdout!r} {answer.stderr!r}"
    found = re.match(r"v?(\d+)\.(\d+)", kustomize)
    if found is None or (int(found[1]), int(found[2])) < MIN_KUSTOMIZE:
        return f"kubectl bundles kustomize {kustomize}; ops/k8s needs v5 (kubectl 1.27+)"
    return None


@dataclass(frozen=True)
class Rendered:
    target: str
    objects: tuple[Obj, ...]

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> Obj:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.target}: {len(found)} {kind} named {name}"
        return found[0]

    def workloads(self) -> list[Obj]:
        return [o for o in self.objects if o["kind"] in {"Deployment", "StatefulSet"}]

    def anygate_deployments(self, role: str) -> list[Obj]:
        """Deployments whose container runs ``anygate <role>`` (the image's entry point)."""
        return [d for d in self.of_kind("Deployment") if container(d)["args"][0] == role]

    def config_text(self) -> str:
        (config_map,) = [
            c
            for c in self.of_kind("ConfigMap")
            if c["metadata"]["name"].startswith("anygate-config")
        ]
        return str(config_map["data"]["config.yaml"])


@functools.cache
def render(target: str) -> Rendered:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {target}:\n{result.stderr}"
    return Rendered(target, tuple(o for o in yaml.safe_load_all(result.stdout) if o))


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> Iterator[Obj]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container(workload: Obj) -> Obj:
    (only,) = pod_spec(workload)["containers"]
    return dict(only)


def option(args: list[str], flag: str) -> str | None:
    """The value after ``flag`` in a container's args, or None."""
    return args[args.index(flag) + 1] if flag in args else None


def env_names(workload: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container(workload).get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())
