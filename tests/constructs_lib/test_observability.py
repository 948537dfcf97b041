"""Observability (constructs_lib/observability.py): its constructs alone from their props (``construct_synth``);
through the synthesized stacks, scrape annotations by default, and with the prod example kube-prometheus-stack,
PodMonitor/ServiceMonitor in the ray-cluster stack, Ray dashboard wiring and Container Insights."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.eks_addon import EksAddon
from cdktf_cdktf_provider_helm.release import Release
from cdktf_cdktf_provider_kubernetes.manifest import Manifest

from config import ConfigError, parse_config
from constructs_lib.manifests.ray_cluster import RayClusterProps, WorkerGroupProps, ray_cluster
from constructs_lib.observability import (
    ObservabilityAddons,
    ObservabilityAddonsProps,
    RayMonitors,
    RayMonitorsProps,
    scrape_annotations,
)
from tests.helpers import one, ref, resources, tf_json
from tests.k8s_schemas import validate_crd_object

# Ray exports Prometheus metrics on 8080 (KubeRay's default --metrics-export-port, the container port "metrics").
SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}


def rc(stacks) -> dict:
    return one(stacks["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]


def pods(manifest) -> list[dict]:
    spec = manifest["spec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


def test_default_ray_pods_carry_scrape_annotations_only(default_synth):
    manifest = rc(default_synth)
    validate_crd_object(manifest)
    pod_list = pods(manifest)
    assert len(pod_list) == 2  # the head and the default's one worker group
    for pod in pod_list:
        # The prometheus.io/* convention (Prometheus' kubernetes_sd_configs examples): strings, Ray's metrics port.
        # (The node autoscalers' annotations are the platform's, always there: tests/constructs_lib/test_ray_cluster.)
        annotations = pod["metadata"]["annotations"]
        assert {k: v for k, v in annotations.items() if k.startswith("prometheus.io/")} == SCRAPE_ANNOTATIONS
    assert "env" not in manifest["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    ray = default_synth["ray"]
    assert not resources(ray, "aws_eks_addon")
    assert "kube_prometheus_stack" not in resources(ray, "helm_release")
    assert set(resources(default_synth["ray-cluster"], "kubernetes_manifest")) == {"ray_cluster"}


def test_observability_off_leaves_the_ray_cluster_unchanged():
    base = dict(name="kuberay", namespace="ray", ray_version="2.58.0", image="rayproject/ray:2.58.0-py311",
                head_service_account="ray-head", worker_service_account="ray-worker", pvc_name="fsx", head_cpu="2",
                head_memory="8Gi", idle_timeout_seconds=60, worker_drain_seconds=60, upgrade_strategy="Recreate",
                worker_groups=[WorkerGroupProps("cpu", "cpu", 0, 2, "2", "8Gi", 0)])
    off = ray_cluster(RayClusterProps(**base))
    for pod in (off["spec"]["headGroupSpec"]["template"], off["spec"]["workerGroupSpecs"][0]["template"]):
        assert not [k for k in pod["metadata"]["annotations"] if k.startswith("prometheus.io/")]
    assert "env" not in off["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]


def test_prod_installs_kube_prometheus_stack_pinned(prod_synth):
    ray = prod_synth["ray"]
    rel = one(ray, "helm_release", "kube_prometheus_stack")
    assert rel["chart"] == "kube-prometheus-stack" and rel["version"] == "79.7.1"
    assert rel["repository"] == "https://prometheus-community.github.io/helm-charts"
    assert rel["namespace"] == "${kubernetes_namespace_v1.monitoring.metadata[0].name}" and rel["wait"] is True
    values = json.loads(rel["values"][0])
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert values["grafana"]["grafana.ini"]["security"]["allow_embedding"] is True


def test_kube_prometheus_stack_places_every_workload(prod_synth):
    values = json.loads(one(prod_synth["ray"], "helm_release", "kube_prometheus_stack")["values"][0])
    core = {"nodeSelector": {"usage": "core"}, "tolerations": [], "affinity": {}}
    placed = {
        "prometheus-operator": values["prometheusOperator"],
        "admission-webhook patch jobs": values["prometheusOperator"]["admissionWebhooks"]["patch"],
        "prometheus": values["prometheus"]["prometheusSpec"],
        "alertmanager": values["alertmanager"]["alertmanagerSpec"],
        "grafana": values["grafana"],
        "kube-state-metrics": values["kube-state-metrics"],
    }
    for name, v in placed.items():
        assert {k: v.get(k) for k in core} == core, name
    # node-exporter on every node, tainted GPU nodes included.
    exporter = values["prometheus-node-exporter"]
    assert exporter["tolerations"] == [{"operator": "Exists"}]
    assert exporter["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_prod_ray_head_points_the_dashboard_at_prometheus_and_grafana(prod_synth):
    manifest = rc(prod_synth)
    validate_crd_object(manifest)
    head = manifest["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in head["env"]}
    assert env == {
        "RAY_GRAFANA_HOST": "http://kube-prometheus-stack-grafana.monitoring.svc:80",
        "RAY_PROMETHEUS_HOST": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "RAY_PROMETHEUS_NAME": "Prometheus",
        "RAY_GRAFANA_IFRAME_HOST": "http://localhost:3000",
        "RAY_GRAFANA_CLUSTER_FILTER": "kuberay",  # the Cluster variable of Ray's dashboards (ray_io_cluster)
    }
    for pod in pods(manifest):  # monitors mode: no scrape annotations
        assert not [k for k in pod["metadata"].get("annotations", {}) if k.startswith("prometheus.io/")]


def test_prod_monitors_live_in_the_ray_cluster_stack(prod_synth):
    assert not any(m.get("manifest", {}).get("apiVersion", "").startswith("monitoring.coreos.com")
                   for m in resources(prod_synth["ray"], "kubernetes_manifest").values()), \
        "monitors in the ray stack would need the CRDs at plan time, before kube-prometheus-stack installed them"
    manifests = resources(prod_synth["ray-cluster"], "kubernetes_manifest")
    pm = manifests["ray_pod_monitor"]["manifest"]
    assert pm["kind"] == "PodMonitor" and pm["metadata"]["namespace"] == "ray"
    assert pm["spec"]["selector"]["matchLabels"] == {"ray.io/cluster": "kuberay"}
    endpoints = pm["spec"]["podMetricsEndpoints"]
    # Ray's node metrics on every pod; the head's autoscaler and dashboard metrics by their port names.
    assert [ep["port"] for ep in endpoints] == ["metrics", "as-metrics", "dash-metrics"]
    assert all(ep["relabelings"][0]["targetLabel"] == "ray_io_cluster" for ep in endpoints)
    head = rc(prod_synth)["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in head["ports"]}.items() >= {
        "metrics": 8080, "as-metrics": 44217, "dash-metrics": 44227}.items()
    sm = manifests["kuberay_service_monitor"]["manifest"]
    assert sm["kind"] == "ServiceMonitor"
    assert sm["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "kuberay-operator"}
    assert sm["spec"]["endpoints"][0]["targetPort"] == 8080


def test_prod_container_insights_addon_with_scoped_irsa(prod_synth):
    ray = prod_synth["ray"]
    addon = one(ray, "aws_eks_addon", "container_insights")
    assert addon["addon_name"] == "amazon-cloudwatch-observability"
    assert addon["cluster_name"] == "${data.terraform_remote_state.infra.outputs.cluster_name}"
    assert addon["service_account_role_arn"] == "${aws_iam_role.container_insights.arn}"
    # Its operator (a Deployment, no tolerations) on the core group, not on an untainted worker group; its own DCGM
    # exporter off, ours (observability.dcgm_exporter) being on.
    assert json.loads(addon["configuration_values"]) == {"manager": {"nodeSelector": {"usage": "core"}},
                                                         "dcgmExporter": {"enabled": False}}
    trust = tf_json(one(ray, "aws_iam_role", "container_insights")["assume_role_policy"], placeholder="TF_EXPR")
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent" in cond.values()
    policy = json.loads(one(ray, "aws_iam_role_policy", "container_insights")["policy"])
    logs = next(s for s in policy["Statement"] if s["Sid"] == "ContainerInsightsLogs")
    assert logs["Resource"].endswith(
        ":log-group:/aws/containerinsights/${data.terraform_remote_state.infra.outputs.cluster_name}/*")


@pytest.mark.parametrize("data, message", [
    ({"observability": {"metrics_scrape": "servicemonitor"}},
     "observability.metrics_scrape: must be 'none', 'annotations' or 'monitors'"),
    ({"observability": {"kube_prometheus_stack_chart_version": "latest"}},
     "observability.kube_prometheus_stack_chart_version: must be a pinned"),
    ({"observability": {"grafana_iframe_host": "grafana"}},
     "observability.grafana_iframe_host: must be an http(s) URL"),
    ({"observability": {"container_insights_addon_version": "4.4"}},
     "observability.container_insights_addon_version: must be"),
    ({"observability": {"monitoring_namespace": "Monitoring"}},
     "observability.monitoring_namespace: must be a DNS label"),
])
def test_bad_observability_config_is_one_clear_error(data, message):
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert message in str(e.value)


def test_scrape_annotations_follow_the_prometheus_convention():
    assert scrape_annotations() == SCRAPE_ANNOTATIONS


# ---- alone: the constructs in an empty stack, from their props ---------------------------------------------------
def _addons_props(**kw) -> ObservabilityAddonsProps:
    base = dict(cluster_name="unit-cluster", oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/o/id/A",
                oidc_issuer_host="o/id/A", kube_prometheus_stack=True, kube_prometheus_stack_chart_version="79.7.1",
                monitoring_namespace="metrics", container_insights=True,
                container_insights_addon_version="v4.4.0-eksbuild.1",
                container_insights_role_name_prefix="unit-ci-")
    return ObservabilityAddonsProps(**{**base, **kw})


@pytest.fixture(scope="module")
def everything_on(construct_synth):
    return construct_synth(lambda stack: ObservabilityAddons(stack, "observability", _addons_props()),
                           providers=("aws", "kubernetes", "helm"))


def test_alone_kube_prometheus_stack_pinned_in_the_props_namespace_waited_for(everything_on):
    assert everything_on.has_resource("kubernetes_namespace_v1", {"metadata": {"name": "metrics"}})
    assert everything_on.has_resource(Release, {
        "name": "kube-prometheus-stack", "chart": "kube-prometheus-stack", "version": "79.7.1",
        "repository": "https://prometheus-community.github.io/helm-charts",
        "namespace": "${kubernetes_namespace_v1.monitoring.metadata[0].name}", "wait": True, "atomic": True})


def test_alone_container_insights_addon_with_its_scoped_irsa_role(everything_on):
    assert everything_on.has_resource(EksAddon, {
        "cluster_name": "unit-cluster", "addon_name": "amazon-cloudwatch-observability",
        "addon_version": "v4.4.0-eksbuild.1",
        "service_account_role_arn": ref("aws_iam_role", "container_insights", "arn")})
    trust = json.loads(everything_on.one("aws_iam_role", "container_insights")["assume_role_policy"])["Statement"][0]
    sub = trust["Condition"]["StringEquals"]["o/id/A:sub"]
    assert sub == "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent"
    policy = json.loads(everything_on.one("aws_iam_role_policy", "container_insights")["policy"])
    logs = next(s for s in policy["Statement"] if s["Sid"] == "ContainerInsightsLogs")
    assert logs["Resource"] == "arn:*:logs:*:*:log-group:/aws/containerinsights/unit-cluster/*"


def test_alone_everything_off_creates_nothing(construct_synth):
    off = construct_synth(lambda stack: ObservabilityAddons(stack, "observability", _addons_props(
        kube_prometheus_stack=False, container_insights=False)), providers=("aws", "kubernetes", "helm"))
    assert "resource" not in off.doc


def test_alone_monitors_select_the_props_cluster_in_its_namespace(construct_synth):
    monitors = construct_synth(lambda stack: RayMonitors(stack, "monitors", RayMonitorsProps(
        cluster_name="unit", namespace="ray-unit")), providers=("kubernetes",))
    assert monitors.has_resource(Manifest, {
        "field_manager": {"name": "terraform", "force_conflicts": True},
        "manifest": {"kind": "PodMonitor", "metadata": {"name": "unit-ray", "namespace": "ray-unit"},
                     "spec": {"selector": {"matchLabels": {"ray.io/cluster": "unit"}}}}})
    assert monitors.has_resource(Manifest, {"manifest": {
        "kind": "ServiceMonitor", "metadata": {"namespace": "ray-unit"},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}},
                 "endpoints": [{"targetPort": 8080, "path": "/metrics", "interval": "30s", "honorLabels": True}]}}})
    assert sorted(monitors.resources("kubernetes_manifest")) == ["kuberay_service_monitor", "ray_pod_monitor"]
