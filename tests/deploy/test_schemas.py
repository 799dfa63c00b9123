"""The validators of ``validation.py`` refuse what the API server would: checked on objects
with one misspelt or misplaced field, so that a pass of the manifests means something."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.deploy.validation import SchemaError, validate_object

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d"},
    "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "anygate"}]},
        },
    },
}
SCALED_OBJECT: dict[str, Any] = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "s"},
    "spec": {
        "scaleTargetRef": {"name": "d"},
        "minReplicaCount": 0,
        "triggers": [{"type": "prometheus", "metadata": {"query": "up", "threshold": "1"}}],
    },
}
SERVICE_MONITOR: dict[str, Any] = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "ServiceMonitor",
    "metadata": {"name": "m"},
    "spec": {"selector": {"matchLabels": {"a": "b"}}, "endpoints": [{"port": "metrics"}]},
}


@pytest.mark.parametrize(
    "obj", [DEPLOYMENT, SCALED_OBJECT, SERVICE_MONITOR], ids=lambda o: o["kind"]
)
def test_a_well_formed_object_passes(obj: dict[str, Any]) -> None:
    validate_object(obj)


@pytest.mark.parametrize(
    ("obj", "path", "wrong"),
    [
        (DEPLOYMENT, ("spec", "template", "spec"), {"terminationGracePeriod": 45}),
        (
            DEPLOYMENT,
            ("spec", "template", "spec", "containers", 0),
            {"readOnlyRootFilesystem": True},
        ),
        (SCALED_OBJECT, ("spec",), {"minReplicas": 0}),
        (SCALED_OBJECT, ("spec",), {"minReplicaCount": "zero"}),
        (SERVICE_MONITOR, ("spec", "endpoints", 0), {"scrapeInterval": "15s"}),
    ],
    ids=["pod-field", "container-field", "keda-field", "keda-type", "monitor-field"],
)
def test_a_misspelt_or_misplaced_field_is_refused(
    obj: dict[str, Any], path: tuple[str | int, ...], wrong: dict[str, Any]
) -> None:
    bad = copy.deepcopy(obj)
    node: Any = bad
    for part in path:
        node = node[part]
    node.update(wrong)
    (field,) = wrong
    with pytest.raises(SchemaError, match=field if field != "minReplicaCount" else "zero"):
        validate_object(bad)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(SchemaError, match="no schema"):
        validate_object(
            {"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {"name": "x"}}
        )
