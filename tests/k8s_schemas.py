"""Validate Kubernetes objects the way the API server will: KubeRay's and Karpenter's CRD schemas
(tests/reference/kuberay-v1.7.0, tests/reference/karpenter-v1.14.1, derived from the releases' CRDs by
scripts/derive_reference.py) and kubernetes-validate for core objects, both
strict about unknown fields (the API server would silently prune them)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate

from config.versions import DEFAULT_KUBERNETES_VERSION
from scripts.derive_reference import KARPENTER_OUT as KARPENTER_REFERENCE
from tests.helpers import REFERENCE

KUBERNETES_VERSION = DEFAULT_KUBERNETES_VERSION  # the default cluster's API version
CRD_SCHEMAS = {"RayCluster": REFERENCE / "raycluster.schema.json", "RayJob": REFERENCE / "rayjob.schema.json",
               # Karpenter's (cluster.autoscaler: karpenter), derived by scripts/derive_reference.py --karpenter
               "NodePool": KARPENTER_REFERENCE / "nodepool.schema.json",
               "EC2NodeClass": KARPENTER_REFERENCE / "ec2nodeclass.schema.json"}


@cache
def crd_schema(kind: str) -> dict:
    """The v1 openAPIV3Schema of a KubeRay or Karpenter CRD."""
    return json.loads(CRD_SCHEMAS[kind].read_text())


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
