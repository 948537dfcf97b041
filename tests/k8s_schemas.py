"""Validate Kubernetes objects the way the API server will: KubeRay CRD schemas (reference data in
../shared/reference/kuberay-v1.7.0) and kubernetes-validate for core objects, both strict about
unknown fields (the API server would silently prune them)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.helpers import REFERENCE

KUBERNETES_VERSION = "1.34"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}


@lru_cache(maxsize=None)
def crd_schema(kind: str) -> dict:
    path = REFERENCE / CRD_FILES[kind]
    assert path.is_file(), f"reference CRD missing: {path}"
    crd = yaml.safe_load(path.read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


def unknown_fields(obj: Any, schema: dict, path: str = "") -> list[str]:
    """Fields the structural schema does not declare (the API server prunes them silently)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(obj, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        for k, v in obj.items():
            if path == "" and k == "metadata":
                continue  # ObjectMeta is validated by the API server itself
            if props and k in props:
                found += unknown_fields(v, props[k], f"{path}.{k}")
            elif isinstance(addl, dict):
                found += unknown_fields(v, addl, f"{path}.{k}")
            else:
                found.append(f"{path}.{k}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            found += unknown_fields(v, schema["items"], f"{path}[{i}]")
    return found


def validate_crd_object(obj: dict) -> None:
    schema = crd_schema(obj["kind"])
    jsonschema.validate(obj, schema)
    extra = unknown_fields(obj, schema)
    assert not extra, f"{obj['kind']} has fields the CRD does not declare: {extra}"


def validate_core_object(obj: dict) -> None:
    kubernetes_validate.validate(obj, desired_version=KUBERNETES_VERSION, strict=True)
