"""Schema validation for the deployment files: built-in Kubernetes kinds through
``kubernetes-validate`` (the Kubernetes JSON schemas it bundles, strict about unknown fields),
the CRD kinds (KEDA ScaledObject, prometheus-operator ServiceMonitor) and the compose file
through the schemas vendored in ``schemas/`` (their sources and licences: ``schemas/README.md``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CRD_FILES = ("keda.sh_scaledobject.json", "monitoring.coreos.com_servicemonitor.json")
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes release the manifests claim (autoscaling/v2, policy/v1, seccomp fields
are older) and the newest the package knows."""


class SchemaError(AssertionError):
    """An object does not match its schema: the message names the object and the field."""


def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(part) for part in error.absolute_path) or "(root)"


def _strict(schema: Any) -> Any:
    """The CRD schema as the API server's strict field validation applies it: an object schema
    that lists its properties refuses any other (unless it says it keeps unknown fields)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) → a validator of that custom resource."""
    found = {}
    for name in CRD_FILES:
        crd = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        for version, schema in crd["versions"].items():
            found[(f"{crd['group']}/{version}", crd["kind"])] = jsonschema.Draft7Validator(
                _strict(schema)
            )
    return found


def validate_object(obj: dict[str, Any]) -> None:
    """Raise ``SchemaError`` naming the object and the first field its schema refuses."""
    what = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
    validator = crd_validators().get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if validator is not None:
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            raise SchemaError(f"{what}: {_where(errors[0])}: {errors[0].message}")
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise SchemaError(
                f"{what} (Kubernetes {version}): {_where(exc)}: {exc.message}"
            ) from None
        except kubernetes_validate.SchemaNotFoundError:
            raise SchemaError(f"{what}: no schema for {obj.get('apiVersion')}") from None


@functools.cache
def compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def validate_compose(tree: dict[str, Any]) -> None:
    errors = sorted(compose_validator().iter_errors(tree), key=lambda e: list(e.absolute_path))
    if errors:
        raise SchemaError(f"docker-compose.yml: {_where(errors[0])}: {errors[0].message}")
