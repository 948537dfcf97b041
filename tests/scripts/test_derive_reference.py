"""The committed reference data (tests/reference/) is what scripts/derive_reference.py makes of the upstream files,
and holds structure only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scripts import derive_reference
from tests.helpers import REFERENCE

# Where the upstream release files are, when this checkout has them (the project's CI and developer machines;
# a user's clone does not): ../shared/reference/kuberay-v1.7.0, or $RAY_EKS_REFERENCE_SOURCE.
SOURCE = Path(os.environ.get("RAY_EKS_REFERENCE_SOURCE", derive_reference.DEFAULT_SOURCE))


def _keys(node, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            out.add(k)
            _keys(v, out)
    elif isinstance(node, list):
        for v in node:
            _keys(v, out)
    return out


@pytest.mark.skipif(not SOURCE.is_dir(), reason=f"upstream release files not in this checkout ({SOURCE})")
def test_committed_copy_is_what_the_script_derives_from_upstream():
    derived = derive_reference.derive(SOURCE)
    committed = {p.name: p.read_text() for p in REFERENCE.iterdir()}
    assert derived == committed, "run: python -m scripts.derive_reference"


def test_schemas_keep_structure_and_drop_prose():
    for kind in ("raycluster", "rayjob"):
        schema = json.loads((REFERENCE / f"{kind}.schema.json").read_text())
        spec = schema["properties"]["spec"]
        assert spec["type"] == "object" and "properties" in spec
        keys = _keys(schema, set())
        assert {"type", "properties", "required", "enum"} <= keys
        # "description" survives only as the name of a property, never as prose about one.
        texts = [v for v in _walk_strings(schema) if len(v.split()) > 6]
        assert not texts, texts[:3]


def _walk_strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_strings(v)
    elif isinstance(node, str):
        yield node


def test_strip_prose_keeps_a_property_named_description():
    schema = {"description": "prose", "properties": {"description": {"type": "string", "description": "x"}},
              "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "prose"}]}
    assert derive_reference.strip_prose(schema) == {
        "properties": {"description": {"type": "string"}}, "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}


# ---------------------------------------------------------------------------------------------------- Karpenter
# Karpenter's release files: ../shared/reference/karpenter-v1.14.1 (its repository paths), or a clone of
# aws/karpenter-provider-aws named by $RAY_EKS_KARPENTER_GIT (read at the tag).
KARPENTER_GIT = os.environ.get("RAY_EKS_KARPENTER_GIT")


@pytest.mark.skipif(not (KARPENTER_GIT or derive_reference.KARPENTER_SOURCE.is_dir()),
                    reason=f"Karpenter's release files not in this checkout ({derive_reference.KARPENTER_SOURCE})")
def test_committed_karpenter_copy_is_what_the_script_derives_from_upstream():
    files = derive_reference.karpenter_files(
        None if KARPENTER_GIT else derive_reference.KARPENTER_SOURCE, Path(KARPENTER_GIT) if KARPENTER_GIT else None)
    derived = derive_reference.derive_karpenter(files)
    committed = {p.name: p.read_text() for p in derive_reference.KARPENTER_OUT.iterdir()}
    assert derived == committed, "run: python -m scripts.derive_reference --karpenter"


def test_karpenter_schemas_keep_structure_and_the_values_lose_the_stamped_image():
    out = derive_reference.KARPENTER_OUT
    assert out.name == "karpenter-v1.14.1"
    for name in ("nodepool", "ec2nodeclass"):
        schema = json.loads((out / f"{name}.schema.json").read_text())
        assert schema["properties"]["spec"]["type"] == "object"
        texts = [v for v in _walk_strings(schema) if len(v.split()) > 6 and "self" not in v]  # CEL rules stay
        assert not texts, texts[:3]
    values = json.loads((out / "karpenter.values.json").read_text())
    assert "tag" not in values["controller"]["image"] and "digest" not in values["controller"]["image"]
    assert values["controller"]["image"]["repository"] == "public.ecr.aws/karpenter/controller"


def test_karpenter_files_read_a_directory_of_repository_paths(tmp_path):
    (tmp_path / "pkg" / "apis" / "crds").mkdir(parents=True)
    for path in derive_reference.KARPENTER_CRDS:
        (tmp_path / path).write_text(
            "spec:\n  versions:\n    - name: v1\n      schema:\n        openAPIV3Schema:\n"
            "          description: prose\n          type: object\n")
    (tmp_path / "charts" / "karpenter").mkdir(parents=True)
    (tmp_path / "charts/karpenter/values.yaml").write_text(
        "# prose\ncontroller:\n  image: {repository: r, tag: 1.0.0, digest: sha256:x}\n")
    derived = derive_reference.derive_karpenter(derive_reference.karpenter_files(tmp_path))
    assert json.loads(derived["nodepool.schema.json"]) == {"type": "object"}
    assert json.loads(derived["karpenter.values.json"]) == {"controller": {"image": {"repository": "r"}}}
    (tmp_path / "charts/karpenter/values.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="lacks charts/karpenter/values.yaml"):
        derive_reference.karpenter_files(tmp_path)
