"""Derive the structural reference data the tests need from upstream release files: KubeRay's (the operator chart
we deploy) and Karpenter's (cluster.autoscaler: karpenter).

    python -m scripts.derive_reference [--source ../shared/reference/kuberay-v1.7.0] [--check]
    python -m scripts.derive_reference --karpenter [--source DIR | --git CLONE] [--check]

The sources are not part of a user's clone. KubeRay: ``../shared/reference/kuberay-v1.7.0`` (KubeRay's CRDs and its
charts' values.yaml, as published upstream). Karpenter: a directory holding the release's files under their
repository paths (pkg/apis/crds/*.yaml, charts/karpenter/values.yaml), default
``../shared/reference/karpenter-v<version>``, or ``--git`` a clone of aws/karpenter-provider-aws, read at the tag
v<version> (``git show``). What the tests read is this script's output, committed under ``tests/reference/``: the
v1 ``openAPIV3Schema`` of each CRD with every ``description`` (and validation message) removed (types, required,
enums, defaults, formats, patterns and Kubernetes extensions stay), and each chart's default values as data (YAML
comments, the upstream prose, do not survive parsing). ``--check`` compares instead of writing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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


# ------------------------------------------------------------------------------------------------- Karpenter
KARPENTER_VERSION = f"v{versions.KARPENTER_VERSION}"
KARPENTER_SOURCE = ROOT.parent / "shared" / "reference" / f"karpenter-{KARPENTER_VERSION}"
KARPENTER_OUT = ROOT / "tests" / "reference" / f"karpenter-{KARPENTER_VERSION}"
KARPENTER_CRDS = {"pkg/apis/crds/karpenter.sh_nodepools.yaml": "nodepool.schema.json",
                  "pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml": "ec2nodeclass.schema.json"}
KARPENTER_VALUES = {"charts/karpenter/values.yaml": "karpenter.values.json"}
# The release pipeline stamps the controller image's tag and digest into the published chart; at the tag they name
# the previous release. Left out: the chart's version is what the deployment pins.
KARPENTER_STAMPED = (("controller", "image", "tag"), ("controller", "image", "digest"))


def karpenter_files(source: Path | None = None, git: Path | None = None) -> dict[str, str]:
    """Repository path -> text of the Karpenter release files, from a directory or a clone at the release tag."""
    out = {}
    for path in [*KARPENTER_CRDS, *KARPENTER_VALUES]:
        if git is not None:
            r = subprocess.run(["git", "-C", str(git), "show", f"{KARPENTER_VERSION}:{path}"], capture_output=True,
                               text=True)
            if r.returncode != 0:
                raise FileNotFoundError(f"{git} at {KARPENTER_VERSION} lacks {path}: {r.stderr.strip()}")
            out[path] = r.stdout
        else:
            assert source is not None
            f = source / path
            if not f.is_file():
                raise FileNotFoundError(f"{source} lacks {path}")
            out[path] = f.read_text()
    return out


def derive_karpenter(files: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, target in KARPENTER_CRDS.items():
        out[target] = _dump(crd_schema(files[path]))
    for path, target in KARPENTER_VALUES.items():
        values = yaml.safe_load(files[path])
        for keys in KARPENTER_STAMPED:
            node = values
            for k in keys[:-1]:
                node = node[k]
            node.pop(keys[-1], None)
        out[target] = _dump(values)
    out["SOURCE.json"] = _dump({"karpenter": KARPENTER_VERSION, "repository": "aws/karpenter-provider-aws",
                                "derived_by": "scripts/derive_reference.py --karpenter",
                                "files": sorted([*KARPENTER_CRDS, *KARPENTER_VALUES]),
                                "left_out": [".".join(k) for k in KARPENTER_STAMPED]})
    return out


def _write_or_check(files: dict[str, str], out: Path, check: bool) -> int:
    if check:
        stale = [n for n, text in files.items() if not (out / n).is_file() or (out / n).read_text() != text]
        for n in stale:
            print(f"stale: {out / n}", file=sys.stderr)
        return 1 if stale else 0
    out.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (out / n).write_text(text)
        print(f"wrote {out / n}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--karpenter", action="store_true", help="derive Karpenter's reference instead of KubeRay's")
    ap.add_argument("--source", type=Path, default=None)
    ap.add_argument("--git", type=Path, default=None, help="--karpenter: a clone of aws/karpenter-provider-aws")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    ns = ap.parse_args(argv)
    if ns.karpenter:
        try:
            files = karpenter_files(None if ns.git else (ns.source or KARPENTER_SOURCE), ns.git)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return _write_or_check(derive_karpenter(files), ns.out or KARPENTER_OUT, ns.check)
    ns.source = ns.source or DEFAULT_SOURCE
    ns.out = ns.out or DEFAULT_OUT
    missing = [n for n in [*CRDS, *VALUES] if not (ns.source / n).is_file()]
    if missing:
        print(f"error: {ns.source} lacks {', '.join(missing)}", file=sys.stderr)
        return 2
    return _write_or_check(derive(ns.source), ns.out, ns.check)


if __name__ == "__main__":
    sys.exit(main())
