"""Observability (constructs_lib/observability.py): scrape annotations by default; with the prod example,
kube-prometheus-stack, PodMonitor/ServiceMonitor in the ray-cluster stack, Ray dashboard wiring and
Container Insights."""

from __future__ import annotations

import json

import pytest
import yaml

from config import ConfigError, parse_config
from constructs_lib.observability import scrape_annotations
from constructs_lib.ray_manifests import RayClusterProps, WorkerGroupProps, ray_cluster
from tests.helpers import ROOT, one, resources, tf_json, synth_once
from tests.k8s_schemas import validate_crd_object


@pytest.fixture(scope="module")
def prod(tmp_path_factory) -> dict:
    data = yaml.safe_load((ROOT / "config" / "examples" / "prod-gpu.yaml").read_text())
    return synth_once("prod-gpu-example", data, tmp_path_factory)


def rc(stacks) -> dict:
    return one(stacks["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]


def pods(manifest) -> list[dict]:
    spec = manifest["spec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


def test_default_ray_pods_carry_scrape_annotations_only(default_synth):
    manifest = rc(default_synth)
    validate_crd_object(manifest)
    for pod in pods(manifest):
        assert pod["metadata"]["annotations"] == scrape_annotations()
        assert scrape_annotations()["prometheus.io/port"] == "8080"
    assert "env" not in manifest["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    ray = default_synth["ray"]
    assert not resources(ray, "aws_eks_addon")
    assert "kube_prometheus_stack" not in resources(ray, "helm_release")
    assert set(resources(default_synth["ray-cluster"], "kubernetes_manifest")) == {"ray_cluster"}


def test_observability_off_leaves_the_ray_cluster_unchanged():
    base = dict(name="kuberay", namespace="ray", ray_version="2.58.0", image="rayproject/ray:2.58.0-py311",
                service_account="ray", pvc_name="fsx", head_cpu="2", head_memory="8Gi", idle_timeout_seconds=60,
                worker_groups=[WorkerGroupProps("cpu", "cpu", 0, 2, "2", "8Gi")])
    off = ray_cluster(RayClusterProps(**base))
    assert "annotations" not in off["spec"]["headGroupSpec"]["template"]["metadata"]
    assert "annotations" not in off["spec"]["workerGroupSpecs"][0]["template"]["metadata"]
    assert "env" not in off["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]


def test_prod_installs_kube_prometheus_stack_pinned(prod):
    ray = prod["ray"]
    rel = one(ray, "helm_release", "kube_prometheus_stack")
    assert rel["chart"] == "kube-prometheus-stack" and rel["version"] == "79.7.1"
    assert rel["repository"] == "https://prometheus-community.github.io/helm-charts"
    assert rel["namespace"] == "${kubernetes_namespace_v1.monitoring.metadata[0].name}" and rel["wait"] is True
    values = json.loads(rel["values"][0])
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False and spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert values["grafana"]["grafana.ini"]["security"]["allow_embedding"] is True


def test_kube_prometheus_stack_places_every_workload(prod):
    values = json.loads(one(prod["ray"], "helm_release", "kube_prometheus_stack")["values"][0])
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


def test_prod_ray_head_points_the_dashboard_at_prometheus_and_grafana(prod):
    manifest = rc(prod)
    validate_crd_object(manifest)
    head = manifest["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in head["env"]}
    assert env == {
        "RAY_GRAFANA_HOST": "http://kube-prometheus-stack-grafana.monitoring.svc:80",
        "RAY_PROMETHEUS_HOST": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "RAY_PROMETHEUS_NAME": "Prometheus",
        "RAY_GRAFANA_IFRAME_HOST": "http://localhost:3000",
    }
    for pod in pods(manifest):  # monitors mode: no annotations
        assert "annotations" not in pod["metadata"]


def test_prod_monitors_live_in_the_ray_cluster_stack(prod):
    assert not any(m.get("manifest", {}).get("apiVersion", "").startswith("monitoring.coreos.com")
                   for m in resources(prod["ray"], "kubernetes_manifest").values()), \
        "monitors in the ray stack would need the CRDs at plan time, before kube-prometheus-stack installed them"
    manifests = resources(prod["ray-cluster"], "kubernetes_manifest")
    pm = manifests["ray_pod_monitor"]["manifest"]
    assert pm["kind"] == "PodMonitor" and pm["metadata"]["namespace"] == "ray"
    assert pm["spec"]["selector"]["matchLabels"] == {"ray.io/cluster": "kuberay"}
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["port"] == "metrics"
    assert ep["relabelings"][0]["targetLabel"] == "ray_io_cluster"
    sm = manifests["kuberay_service_monitor"]["manifest"]
    assert sm["kind"] == "ServiceMonitor"
    assert sm["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "kuberay-operator"}
    assert sm["spec"]["endpoints"][0]["targetPort"] == 8080


def test_prod_container_insights_addon_with_scoped_irsa(prod):
    ray = prod["ray"]
    addon = one(ray, "aws_eks_addon", "container_insights")
    assert addon["addon_name"] == "amazon-cloudwatch-observability"
    assert addon["cluster_name"] == "${data.terraform_remote_state.infra.outputs.cluster_name}"
    assert addon["service_account_role_arn"] == "${aws_iam_role.container_insights.arn}"
    # Its operator (a Deployment, no tolerations) on the core group, not on an untainted worker group.
    assert json.loads(addon["configuration_values"]) == {"manager": {"nodeSelector": {"usage": "core"}}}
    trust = tf_json(one(ray, "aws_iam_role", "container_insights")["assume_role_policy"], placeholder="TF_EXPR")
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent" in cond.values()
    policy = json.loads(one(ray, "aws_iam_role_policy", "container_insights")["policy"])
    logs = next(s for s in policy["Statement"] if s["Sid"] == "ContainerInsightsLogs")
    assert logs["Resource"].endswith(":log-group:/aws/containerinsights/${data.terraform_remote_state.infra.outputs.cluster_name}/*")


@pytest.mark.parametrize("data, message", [
    ({"observability": {"metrics_scrape": "servicemonitor"}}, "observability.metrics_scrape: must be 'none', 'annotations' or 'monitors'"),
    ({"observability": {"kube_prometheus_stack_chart_version": "latest"}}, "observability.kube_prometheus_stack_chart_version: must be a pinned"),
    ({"observability": {"grafana_iframe_host": "grafana"}}, "observability.grafana_iframe_host: must be an http(s) URL"),
    ({"observability": {"container_insights_addon_version": "4.4"}}, "observability.container_insights_addon_version: must be"),
    ({"observability": {"monitoring_namespace": "Monitoring"}}, "observability.monitoring_namespace: must be a DNS label"),
])
def test_bad_observability_config_is_one_clear_error(data, message):
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    assert message in str(e.value)
