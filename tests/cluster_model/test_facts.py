"""The recorded placement facts cover what the stacks deploy, and the model refuses what they do not cover."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from config import versions
from conventions.eks import ADDON_CONFIGURATION, addon_configuration
from tests.helpers import stack_items

from . import helm
from .facts import POD_FIELDS, MissingFacts, addon_facts, all_fact_files, chart_facts, evaluate
from .model import ClusterModel
from .scheduling import NotModelled

DEPLOYED_SHAPES = ("default", "dev", "prod", "prod-existing-vpc-k8s-1.33", "karpenter")
# The chart each pinned version in config/versions.py is of.
PINNED_CHARTS = {
    "kuberay-operator": versions.KUBERAY_OPERATOR_CHART,
    "cluster-autoscaler": versions.CLUSTER_AUTOSCALER_CHART,
    "nvidia-device-plugin": versions.NVIDIA_DEVICE_PLUGIN_CHART,
    "kube-prometheus-stack": versions.KUBE_PROMETHEUS_STACK_CHART,
    "dcgm-exporter": versions.DCGM_EXPORTER_CHART,
    "karpenter": versions.KARPENTER_VERSION,
    "karpenter-crd": versions.KARPENTER_VERSION,
}
# owner/repo@tag-or-commit(:path): where a fact file's values were read.
SOURCE_RE = re.compile(r"^[\w.-]+/[\w.-]+@[\w.-]+")
KINDS = {"DaemonSet", "Deployment", "StatefulSet", "Job"}


@pytest.mark.parametrize("chart,version", sorted(PINNED_CHARTS.items()))
def test_every_pinned_chart_version_has_facts(chart, version):
    assert chart_facts(chart, version).data["version"] == version


@pytest.mark.parametrize("shape_name", DEPLOYED_SHAPES)
def test_every_release_and_addon_the_synth_deploys_has_facts(shapes, shape_name):
    for _, stack in stack_items(shapes(shape_name).synth):
        res = stack.get("resource", {})
        for rel in (res.get("helm_release") or {}).values():
            facts = chart_facts(rel["chart"], rel["version"])
            assert facts.data["repository"] == rel["repository"]
        for addon in (res.get("aws_eks_addon") or {}).values():
            assert addon_facts(addon["addon_name"]).data["addon"] == addon["addon_name"]


def _release(synth: dict, key: str) -> dict:
    return synth["ray"]["resource"]["helm_release"][key]


def test_a_chart_bump_without_facts_fails(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    _release(synth, "cluster_autoscaler")["version"] = "9.99.0"
    with pytest.raises(MissingFacts, match=r"cluster-autoscaler 9\.99\.0.*"
                                          r"tests/reference/charts/cluster-autoscaler@9\.99\.0\.yaml"):
        shape.build(synth)


def test_a_chart_from_another_repository_is_refused(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    _release(synth, "nvidia_device_plugin")["repository"] = "https://example.com/charts"
    with pytest.raises(NotModelled, match="repository"):
        shape.build(synth)


def test_an_addon_version_the_facts_do_not_cover_is_refused(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    synth["infra"]["resource"]["aws_eks_addon"]["coredns"]["addon_version"] = "v1.99.0-eksbuild.1"
    with pytest.raises(NotModelled, match="coredns v1.99.0-eksbuild.1"):
        shape.build(synth)


def test_an_addon_without_facts_fails(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    synth["infra"]["resource"]["aws_eks_addon"]["ebs"] = {"addon_name": "aws-ebs-csi-driver", "cluster_name": "x"}
    with pytest.raises(MissingFacts, match="aws-ebs-csi-driver"):
        shape.build(synth)


@pytest.mark.parametrize("values,match", [
    ({"config": {"name": "sharing"}}, "config.name"),  # adds containers the facts do not record
    ({"gfd": {"enabled": True}}, "gfd.enabled"),  # GPU feature discovery DaemonSet
    ({"nfd": {"enabled": True}}, "subchart nfd"),  # node-feature-discovery subchart
])
def test_unrecorded_parts_of_a_chart_are_refused(shapes, values, match):
    shape = shapes("default")
    synth = shape.copy_synth()
    _release(synth, "nvidia_device_plugin")["values"].append(json.dumps(values))
    with pytest.raises(NotModelled, match=match):
        shape.build(synth)


def test_helm_set_blocks_are_refused(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    _release(synth, "kuberay_operator")["set"] = [{"name": "nodeSelector.usage", "value": "gpu"}]
    with pytest.raises(NotModelled, match="set"):
        shape.build(synth)


@pytest.mark.parametrize("resource_type,body,match", [
    ("kubernetes_manifest", {"manifest": {"apiVersion": "example.com/v1", "kind": "Widget",
                                          "metadata": {"name": "w"}}}, "kind Widget"),
    ("kubernetes_deployment_v1", {"metadata": {"name": "d"}}, "kubernetes_deployment_v1"),
    ("kubernetes_manifest", {"manifest": {"apiVersion": "ray.io/v1", "kind": "RayService",
                                          "metadata": {"name": "s"}}}, "kind RayService"),
])
def test_an_unknown_pod_producer_is_refused(shapes, resource_type, body, match):
    shape = shapes("default")
    synth = shape.copy_synth()
    synth["ray-cluster"]["resource"].setdefault(resource_type, {})["extra"] = body
    with pytest.raises(NotModelled, match=match):
        shape.build(synth)


def test_unrecorded_raycluster_options_are_refused(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    spec = synth["ray-cluster"]["resource"]["kubernetes_manifest"]["ray_cluster"]["manifest"]["spec"]
    spec["tlsOptions"] = {"certificateSecretName": "x"}
    with pytest.raises(NotModelled, match="tlsOptions"):
        shape.build(synth)


def test_a_pod_manifest_is_modelled(shapes):
    """A plain Deployment manifest joins the model (and, unplaced in the table, would fail the table test)."""
    shape = shapes("default")
    synth = shape.copy_synth()
    synth["ray-cluster"]["resource"]["kubernetes_manifest"]["extra"] = {"manifest": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "resources": {"requests": {"cpu": "1"}}}]}}}}}
    model: ClusterModel = shape.build(synth)
    assert model.placements["Deployment/web"].groups == {"core"}


# ------------------------------------------------------------------------------------------ the files themselves
@pytest.mark.parametrize("path", all_fact_files(), ids=lambda p: p.name)
def test_fact_files_are_well_formed(path):
    data = yaml.safe_load(path.read_text())
    if "chart" in data:
        assert path.name == f"{data['chart']}@{data['version']}.yaml"
        assert data["repository"].startswith(("https://", "oci://"))
        facts = chart_facts(data["chart"], str(data["version"]))
    else:
        assert path.name == f"{data['addon']}.yaml"
        assert data["verified"] in (True, False, "partial") and data["covers_addon_versions"]
        facts = addon_facts(data["addon"])
    assert SOURCE_RE.match(data["source"]), f"{path.name}: source names no repo@tag: {data['source']!r}"
    if "configuration_schema" in data:
        assert data["configuration_schema"]["verified"] in (True, False)
        jsonschema.Draft6Validator.check_schema(data["configuration_schema"]["schema"])
    workloads = list(data.get("workloads") or [])
    for dep in data.get("dependencies") or []:
        assert {"key", "version", "condition", "values", "workloads"} <= set(dep), dep.get("key")
        if dep["workloads"] not in ("unrecorded", []):
            assert SOURCE_RE.match(dep["source"]), dep["key"]
            workloads += [{**w, "_scope": dep["key"]} for w in dep["workloads"]]
    ids = [w["id"] for w in workloads]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate workload ids"
    merged = facts.chart.values  # parent defaults; subchart scopes below
    for w in workloads:
        assert w["kind"] in KINDS, (path.name, w["id"])
        scope = facts.chart.dependencies[w["_scope"]].values if "_scope" in w else merged
        for name, spec in (w.get("pod") or {}).items():
            assert name in POD_FIELDS
            evaluate(spec, scope)
        for c in [*(w.get("containers") or []), *(w.get("init_containers") or [])]:
            evaluate(c["resources"], scope)
        assert w.get("pod") or w.get("unrecorded_when"), f"{path.name}: {w['id']} records no pod spec"


def test_every_fact_file_is_used_by_a_pin_or_an_addon_we_install(shapes):
    """Facts of a chart version no longer pinned, or of an add-on no deployment installs, are stale."""
    wanted = {f"{c}@{v}.yaml" for c, v in PINNED_CHARTS.items()}
    for name in DEPLOYED_SHAPES:
        for _, stack in stack_items(shapes(name).synth):
            addons = (stack.get("resource", {}).get("aws_eks_addon") or {}).values()
            wanted |= {f"{a['addon_name']}.yaml" for a in addons}
    assert {p.name for p in all_fact_files()} == wanted


# ------------------------------------------------------------------------------------------ add-on configuration
def configured_paths(values: dict, schema: dict, prefix: str = "") -> list[str]:
    """The dotted paths a configuration sets, down to where the schema stops naming properties (a nodeSelector is
    one path: its keys are the user's)."""
    out = []
    for key, value in values.items():
        sub = (schema.get("properties") or {}).get(key) or {}
        if isinstance(value, dict) and "properties" in sub:
            out += configured_paths(value, sub, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def configuration_problems(addon: str, values: dict) -> list[str]:
    """Why an add-on's configuration_values would be refused by EKS (the recorded part of its schema) or ignored by
    the cluster model (a path the recorded chart values do not have). Empty: neither."""
    facts = addon_facts(addon)
    recorded = facts.data.get("configuration_schema")
    if recorded is None:
        return [f"{addon}: configured, and {facts.path.name} records no configuration_schema"]
    schema = recorded["schema"]
    out = [f"{addon}: {'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
           for e in jsonschema.Draft6Validator(schema).iter_errors(values)]
    out += [f"{addon}: {path} is not a value the recorded facts render ({facts.path.name} values)"
            for path in configured_paths(values, schema) if not helm.has_path(facts.chart.values, path)]
    return out


def _configured_addons(synth: dict) -> dict[str, dict]:
    return {a["addon_name"]: json.loads(a["configuration_values"])
            for _, stack in stack_items(synth) for a in (stack.get("resource", {}).get("aws_eks_addon") or {}).values()
            if a.get("configuration_values")}


@pytest.mark.parametrize("shape_name", DEPLOYED_SHAPES)
def test_addon_configuration_is_valid_for_the_addon_and_rendered_by_the_model(shapes, shape_name):
    shape = shapes(shape_name)
    configured = _configured_addons(shape.synth)
    assert configured, "no add-on is configured"
    for addon, values in configured.items():
        assert values == addon_configuration(addon, dcgm_exporter=shape.cfg.observability.dcgm_exporter), addon
        assert configuration_problems(addon, values) == []


def test_every_configured_addon_is_deployed_somewhere(shapes):
    deployed = {a for name in DEPLOYED_SHAPES for a in _configured_addons(shapes(name).synth)}
    assert deployed == set(ADDON_CONFIGURATION)


@pytest.mark.parametrize("addon,values,match", [
    ("coredns", {"nodeselector": {"usage": "core"}}, "Additional properties are not allowed"),  # a typo
    ("coredns", {"nodeSelector": {"usage": 1}}, "is not of type 'string'"),
    ("aws-fsx-csi-driver", {"controller": {"nodeSelectors": {"usage": "core"}}}, "controller.nodeSelectors is not"),
    ("amazon-cloudwatch-observability", {"manager": {"nodeSelector": ["usage=core"]}}, "is not of type 'object'"),
    ("vpc-cni", {"enableNetworkPolicy": True}, "is not of type 'string'"),
    ("kube-proxy", {"mode": "ipvs"}, "records no configuration_schema"),
])
def test_bad_addon_configuration_is_caught(addon, values, match):
    problems = configuration_problems(addon, values)
    assert any(match in p for p in problems), problems
