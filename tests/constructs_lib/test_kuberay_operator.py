"""The KubeRay operator release, alone from its props (``construct_synth``): the official chart at the props'
version, waited for (the ray-cluster stack plans against its CRDs), on the core nodes, in a namespace of its own
under Pod Security restricted, watching the Ray namespace only."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_helm.release import Release
from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1

from constructs_lib.kuberay_operator import KubeRayOperator, KubeRayOperatorProps


@pytest.fixture(scope="module")
def alone(construct_synth):
    return construct_synth(lambda stack: KubeRayOperator(stack, "kuberay", KubeRayOperatorProps(
        namespace="ray-system", watch_namespace="ray-unit", release_name="kuberay-unit", chart_version="1.7.0")),
        providers=("helm", "kubernetes"))


def test_the_props_chart_version_in_its_own_namespace_waited_for(alone):
    assert alone.has_resource(NamespaceV1, {"metadata": {"name": "ray-system", "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted"}}})
    assert alone.has_resource(Release, {
        "name": "kuberay-unit", "namespace": "${kubernetes_namespace_v1.kuberay_operator.metadata[0].name}",
        "repository": "https://ray-project.github.io/kuberay-helm/",
        "chart": "kuberay-operator", "version": "1.7.0", "wait": True, "atomic": True, "timeout": 600})
    assert list(alone.resources("helm_release")) == ["kuberay_operator"]


def test_the_operator_runs_on_core_nodes_with_bounded_resources(alone):
    (values,) = alone.one("helm_release", "kuberay_operator")["values"]
    values = json.loads(values)
    assert (values["nodeSelector"], values["tolerations"], values["affinity"]) == ({"usage": "core"}, [], {})
    assert values["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert values["metrics"] == {"enabled": True}


def test_the_operator_watches_and_has_rights_in_the_ray_namespace_only(alone):
    values = json.loads(alone.one("helm_release", "kuberay_operator")["values"][0])
    assert values["singleNamespaceInstall"] is True and values["watchNamespace"] == ["ray-unit"]
