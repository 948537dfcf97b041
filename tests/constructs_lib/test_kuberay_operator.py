"""The KubeRay operator release, alone from its props (``construct_synth``): the official chart at the props'
version, waited for (the ray-cluster stack plans against its CRDs), on the core nodes."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_helm.release import Release

from constructs_lib.kuberay_operator import KubeRayOperator, KubeRayOperatorProps


@pytest.fixture(scope="module")
def alone(construct_synth):
    return construct_synth(lambda stack: KubeRayOperator(stack, "kuberay", KubeRayOperatorProps(
        namespace="ray-system", release_name="kuberay-unit", chart_version="1.7.0")), providers=("helm",))


def test_the_props_chart_version_in_the_props_namespace_waited_for(alone):
    assert alone.has_resource(Release, {
        "name": "kuberay-unit", "namespace": "ray-system", "repository": "https://ray-project.github.io/kuberay-helm/",
        "chart": "kuberay-operator", "version": "1.7.0", "wait": True, "atomic": True, "timeout": 600})
    assert list(alone.resources("helm_release")) == ["kuberay_operator"]


def test_the_operator_runs_on_core_nodes_with_bounded_resources(alone):
    (values,) = alone.one("helm_release", "kuberay_operator")["values"]
    values = json.loads(values)
    assert (values["nodeSelector"], values["tolerations"], values["affinity"]) == ({"usage": "core"}, [], {})
    assert values["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert values["metrics"] == {"enabled": True}
