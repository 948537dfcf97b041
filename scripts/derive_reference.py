"""Derive the structural reference data the tests need from the upstream KubeRay release files.

    python -m scripts.derive_reference [--source ../shared/reference/kuberay-v1.7.0] [--check]

The source (``../shared/reference/kuberay-v1.7.0``: KubeRay's CRDs and its charts' values.yaml, as published
upstream) is not part of a user's clone. What the tests read is this script's output, committed under
``tests/reference/kuberay-v1.7.0/``: the v1 ``openAPIV3Schema`` of each CRD with every ``description`` removed
(types, required, enums, defaults, formats and Kubernetes extensions stay), and each chart's default values as
data (YAML comments, the upstream prose, do not survive parsing). ``--check`` compares instead of writing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from config import versions

ROOT = Path(__file__).resolve().parent.parent
# The release of the operator chart we deploy: its CRDs are what the RayCluster must satisfy.
KUBERAY_VERSION = f"v{versions.KUBERAY_OPERATOR_CHART}"
DEFAULT_SOURCE = ROOT.parent / "shared" / "reference" / f"kuberay-{KUBERAY_VERSION}"
DEFAULT_OUT = ROOT / "tests" / "reference" / f"kuberay-{KUBERAY_VERSION}"
CRDS = {"ray.io_rayclusters.yaml": "raycluster.schema.json", "ray.io_rayjobs.yaml": "rayjob.schema.json"}
VALUES = {"kuberay-operator.values.yaml": "kuberay-operator.values.json",
          "ray-cluster.values.yaml": "ray-cluster.values.json"}
PROSE_KEYS = frozenset({"description"})


def strip_prose(node: Any, *, under_properties: bool = False) -> Any:
    """The schema without its descriptions and validation messages (the rules stay). A *property* named
    "description" is structure and stays."""
    if isinstance(node, dict):
        return {k: _strip_value(k, v, under_properties) for k, v in node.items()
                if under_properties or k not in PROSE_KEYS}
    if isinstance(node, list):
        return [strip_prose(v) for v in node]
    return node


def _strip_value(key: str, value: Any, under_properties: bool) -> Any:
    if key == "x-kubernetes-validations" and not under_properties:
        return [{k: v for k, v in rule.items() if k != "message"} for rule in value]
    return strip_prose(value, under_properties=(key == "properties" and not under_properties))


def crd_schema(text: str) -> dict:
    crd = yaml.safe_load(text)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return strip_prose(version["schema"]["openAPIV3Schema"])


def derive(source: Path) -> dict[str, str]:
    """Output file name -> content (stable JSON: sorted keys, one trailing newline)."""
    out: dict[str, str] = {}
    for name, target in CRDS.items():
        out[target] = _dump(crd_schema((source / name).read_text()))
    for name, target in VALUES.items():
        out[target] = _dump(yaml.safe_load((source / name).read_text()))
    out["SOURCE.json"] = _dump({"kuberay": KUBERAY_VERSION, "derived_by": "scripts/derive_reference.py",
                                "files": sorted([*CRDS, *VALUES])})
    return out


def _dump(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    ns = ap.parse_args(argv)
    missing = [n for n in [*CRDS, *VALUES] if not (ns.source / n).is_file()]
    if missing:
        print(f"error: {ns.source} lacks {', '.join(missing)}", file=sys.stderr)
        return 2
    files = derive(ns.source)
    if ns.check:
        stale = [n for n, text in files.items() if not (ns.out / n).is_file() or (ns.out / n).read_text() != text]
        for n in stale:
            print(f"stale: {ns.out / n}", file=sys.stderr)
        return 1 if stale else 0
    ns.out.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (ns.out / n).write_text(text)
        print(f"wrote {ns.out / n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
