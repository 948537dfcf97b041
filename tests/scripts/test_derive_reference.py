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
