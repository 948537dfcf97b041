"""Each fact has one owner: the worst offenders of the past (pinned versions, the node label, the GPU resource, the
head-service naming rule, the training job's default arguments and script) appear as literals in one module only.

A literal that reappears elsewhere is a second owner waiting to drift: import it from its owner instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from config import versions
from tests.helpers import ROOT

SOURCE_DIRS = ("config", "conventions", "constructs_lib", "stacks", "scripts", "lambdas", "fast_imports", "benchmarks")
PINNED = {name: value for name, value in vars(versions).items()
          if name.isupper() and isinstance(value, str) and value.count(".") == 2}


def string_constants(path: Path) -> list[str]:
    return [n.value for n in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def sources() -> list[Path]:
    files = [ROOT / "main.py"]
    for d in SOURCE_DIRS:
        files += sorted((ROOT / d).rglob("*.py"))
    return [f for f in files if ".venv" not in f.parts]


# fact -> (the module that owns it, a predicate on a string constant that restates it)
FACTS = {
    **{f"versions.{name}": ("config/versions.py", lambda s, v=value: s == v) for name, value in PINNED.items()},
    "the node role label key": ("conventions/kubernetes.py", lambda s: s == "usage"),
    "the GPU resource / taint key": ("conventions/kubernetes.py", lambda s: s == "nvidia.com/gpu"),
    "the head service naming rule": ("conventions/kubernetes.py", lambda s: s.endswith("-head-svc")),
    "the training job's default arguments": ("config/models.py", lambda s: s == "--num-epochs"),
    "the training script's name": ("stacks/contract.py", lambda s: s == "pytorch_training_e2e.py"),
}


def test_the_pinned_versions_are_found():
    assert {"RAY_VERSION", "KUBERAY_OPERATOR_CHART", "CLUSTER_AUTOSCALER_CHART", "NVIDIA_DEVICE_PLUGIN_CHART",
            "KUBE_PROMETHEUS_STACK_CHART"} <= set(PINNED)


@pytest.mark.parametrize("fact", sorted(FACTS))
def test_a_fact_is_written_down_once(fact):
    owner, restates = FACTS[fact]
    where = {str(f.relative_to(ROOT)) for f in sources() if any(restates(s) for s in string_constants(f))}
    assert where == {owner}, f"{fact}: owned by {owner}, restated in {sorted(where - {owner})}"
