"""Observability of the Ray platform: Prometheus scraping of Ray and KubeRay, optional kube-prometheus-stack
(Prometheus + Grafana) wired into the Ray dashboard, optional CloudWatch Container Insights.

Where each part lives, and why:

- ``ObservabilityAddons`` (ray stack): the kube-prometheus-stack Helm release (it installs the Prometheus
  Operator CRDs) and the ``amazon-cloudwatch-observability`` EKS add-on with its IRSA role. Helm releases
  and ``aws_eks_addon`` need no CRD at plan time.
- ``RayMonitors`` (ray-cluster stack): PodMonitor (Ray head + workers) and ServiceMonitor (KubeRay operator)
  as ``kubernetes_manifest``. Like the RayCluster, a manifest of a custom kind needs its CRD at *plan* time,
  which exists only after the ray stack applied kube-prometheus-stack; the ray-cluster stack plans after it.
- Scrape annotations and the Ray dashboard's Grafana/Prometheus settings are plain fields of the RayCluster
  (``ray_manifests.RayClusterProps.pod_annotations`` / ``head_env``), computed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.eks_addon import EksAddon
from cdktf_cdktf_provider_helm.release import Release
from cdktf_cdktf_provider_kubernetes.manifest import Manifest, ManifestFieldManager
from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1, NamespaceV1Metadata
from constructs import Construct

from conventions.eks import CONTAINER_INSIGHTS_ADDON
from conventions.kubernetes import CORE_ROLE, node_selector, pod_security_labels
from conventions.ray import HEAD_PORTS, RAY_CLUSTER_LABEL

from .eks_addons import addon_configuration_values
from .iam import policy_document, statement
from .irsa_role import IrsaRole, IrsaRoleProps

PROMETHEUS_COMMUNITY_REPO = "https://prometheus-community.github.io/helm-charts"
KPS_RELEASE = "kube-prometheus-stack"
# Ray exports Prometheus metrics on this port on every node (KubeRay sets --metrics-export-port and adds
# the container port named "metrics"); the KubeRay operator serves its own on its Service's port 8080.
RAY_METRICS_PORT = HEAD_PORTS["metrics"]
OPERATOR_METRICS_PORT = 8080
CLOUDWATCH_NAMESPACE = "amazon-cloudwatch"
CLOUDWATCH_SERVICE_ACCOUNT = "cloudwatch-agent"
# Monitors carry the release label kube-prometheus-stack selects by default, for installs not made here.
MONITOR_LABELS = {"release": KPS_RELEASE}
# The monitoring namespace admits privileged pods: kube-prometheus-stack's node-exporter DaemonSet runs with the
# host's network and PID namespaces and hostPath mounts of /proc, /sys and /, which baseline refuses. Pods that
# would fail baseline are reported (audit, warn); nothing of Ray's runs there.
MONITORING_POD_SECURITY = ("privileged", "baseline")


def scrape_annotations() -> dict[str, str]:
    """The prometheus.io/* convention (Prometheus' kubernetes_sd examples, CloudWatch agent, AMP collectors)."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(RAY_METRICS_PORT),
            "prometheus.io/path": "/metrics"}


def grafana_service_url(monitoring_namespace: str) -> str:
    return f"http://{KPS_RELEASE}-grafana.{monitoring_namespace}.svc:80"


def prometheus_service_url(monitoring_namespace: str) -> str:
    return f"http://{KPS_RELEASE}-prometheus.{monitoring_namespace}.svc:9090"


def ray_head_env(monitoring_namespace: str, grafana_iframe_host: str) -> dict[str, str]:
    """The Ray dashboard's metrics settings: it queries Prometheus and Grafana in-cluster, and the browser
    loads the embedded Grafana panels from ``grafana_iframe_host`` (a port-forward by default)."""
    return {
        "RAY_GRAFANA_HOST": grafana_service_url(monitoring_namespace),
        "RAY_PROMETHEUS_HOST": prometheus_service_url(monitoring_namespace),
        "RAY_PROMETHEUS_NAME": "Prometheus",  # kube-prometheus-stack's default datasource name
        "RAY_GRAFANA_IFRAME_HOST": grafana_iframe_host,
    }


def _on_core() -> dict:
    """Placement of a kube-prometheus-stack workload on the core nodes: selected there, no tolerations (so never on
    GPU nodes), no node affinity (Prometheus and Alertmanager keep the chart's soft anti-affinity between their
    replicas, set by podAntiAffinity: soft)."""
    return {"nodeSelector": node_selector(CORE_ROLE), "tolerations": [], "affinity": {}}


def kube_prometheus_stack_values() -> dict:
    """Every workload's placement is stated: the operator, its admission-webhook patch Jobs (pre/post-install
    hooks), Prometheus, Alertmanager, Grafana and kube-state-metrics on core; node-exporter on every node."""
    return {
        "prometheus": {"prometheusSpec": {
            # Select every PodMonitor/ServiceMonitor, not only those labelled with this release.
            "podMonitorSelectorNilUsesHelmValues": False,
            "serviceMonitorSelectorNilUsesHelmValues": False,
            **_on_core(),
            "retention": "15d",
        }},
        "prometheusOperator": {**_on_core(), "admissionWebhooks": {"patch": _on_core()}},
        "alertmanager": {"alertmanagerSpec": _on_core()},
        "kube-state-metrics": _on_core(),
        # A node-level exporter belongs on every node, GPU nodes (tainted) and tainted user groups included: it
        # tolerates every taint (the chart's default tolerates only NoSchedule ones); the chart's template adds its
        # not-Fargate node affinity. It requests nothing, so it never crowds out Ray pods.
        "prometheus-node-exporter": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                     "tolerations": [{"operator": "Exists"}]},
        "grafana": {
            **_on_core(),
            # The Ray dashboard embeds Grafana panels in iframes; Grafana is ClusterIP-only (port-forward),
            # so anonymous read-only access stays inside the cluster network.
            "grafana.ini": {"security": {"allow_embedding": True},
                            "auth.anonymous": {"enabled": True, "org_role": "Viewer"}},
            # Dashboards from ConfigMaps labelled grafana_dashboard=1 in any namespace (Ray's, for one).
            "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard", "searchNamespace": "ALL"}},
        },
    }


def prometheus_peer(monitoring_namespace: str) -> dict:
    """kube-prometheus-stack's Prometheus pods, as a NetworkPolicy peer (prometheus-operator v0.86.2 labels the
    pods it runs app.kubernetes.io/name=prometheus; the API server labels every namespace with its name)."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": monitoring_namespace}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def ray_pod_monitor(cluster_name: str, namespace: str) -> dict:
    """Every Ray pod (head and workers) of the cluster, on the container port named ``metrics``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": {"name": f"{cluster_name}-ray", "namespace": namespace, "labels": dict(MONITOR_LABELS)},
        "spec": {
            "jobLabel": "ray",
            "selector": {"matchLabels": {RAY_CLUSTER_LABEL: cluster_name}},
            "podMetricsEndpoints": [{
                "port": "metrics",
                "path": "/metrics",
                "interval": "30s",
                # Ray's Grafana dashboards filter on ray_io_cluster.
                "relabelings": [{"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_label_ray_io_cluster"],
                                 "targetLabel": "ray_io_cluster"}],
            }],
        },
    }


def kuberay_operator_service_monitor(namespace: str) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": "kuberay-operator", "namespace": namespace, "labels": dict(MONITOR_LABELS)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}},
            "endpoints": [{"targetPort": OPERATOR_METRICS_PORT, "path": "/metrics", "interval": "30s",
                           "honorLabels": True}],
        },
    }


# ------------------------------------------------------------------------------------------ constructs
@dataclass(frozen=True)
class ObservabilityAddonsProps:
    cluster_name: str
    oidc_provider_arn: str
    oidc_issuer_host: str
    kube_prometheus_stack: bool
    kube_prometheus_stack_chart_version: str
    monitoring_namespace: str
    container_insights: bool
    container_insights_addon_version: str | None
    container_insights_role_name_prefix: str


class ObservabilityAddons(Construct):
    """Addresses: ``helm_release.kube_prometheus_stack`` (+ ``kubernetes_namespace_v1.monitoring``),
    ``aws_eks_addon.container_insights`` (+ ``aws_iam_role.container_insights``)."""

    kube_prometheus_stack: Release | None = None

    def __init__(self, scope: Construct, id: str, props: ObservabilityAddonsProps) -> None:
        super().__init__(scope, id)
        if props.kube_prometheus_stack:
            ns = NamespaceV1(self, "monitoring", metadata=NamespaceV1Metadata(
                name=props.monitoring_namespace, labels=pod_security_labels(*MONITORING_POD_SECURITY)))
            self.kube_prometheus_stack = Release(
                self, "kube_prometheus_stack", name=KPS_RELEASE, namespace=ns.metadata.name,
                repository=PROMETHEUS_COMMUNITY_REPO, chart="kube-prometheus-stack",
                version=props.kube_prometheus_stack_chart_version,
                values=[json.dumps(kube_prometheus_stack_values())],
                # The ray-cluster stack plans monitors against these CRDs: they must exist when this apply ends.
                wait=True, atomic=True, timeout=900)
        if props.container_insights:
            role = IrsaRole(self, "container_insights", IrsaRoleProps(
                role_name_prefix=props.container_insights_role_name_prefix, oidc_provider_arn=props.oidc_provider_arn,
                oidc_issuer_host=props.oidc_issuer_host, namespace=CLOUDWATCH_NAMESPACE,
                service_account=CLOUDWATCH_SERVICE_ACCOUNT, policy_name="container-insights",
                policy_json=policy_document([
                    # What the CloudWatch agent and Fluent Bit write, limited to this cluster's log groups.
                    statement(["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                               "logs:DescribeLogStreams", "logs:PutRetentionPolicy"],
                              [f"arn:*:logs:*:*:log-group:/aws/containerinsights/{props.cluster_name}/*"],
                              sid="ContainerInsightsLogs"),
                    # PutMetricData and the describe calls have no resource-level permissions.
                    statement(["cloudwatch:PutMetricData", "ec2:DescribeVolumes", "ec2:DescribeTags",
                               "logs:DescribeLogGroups"], ["*"], sid="MetricsAndDescribe"),
                ])))
            EksAddon(Construct(self, "addon"), "container_insights", cluster_name=props.cluster_name,
                     addon_name=CONTAINER_INSIGHTS_ADDON, addon_version=props.container_insights_addon_version,
                     service_account_role_arn=role.role_arn,
                     configuration_values=addon_configuration_values(CONTAINER_INSIGHTS_ADDON),
                     resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE")


@dataclass(frozen=True)
class RayMonitorsProps:
    cluster_name: str
    namespace: str
    operator_namespace: str | None = None  # the KubeRay operator's (None: the Ray namespace)


class RayMonitors(Construct):
    """Addresses: ``kubernetes_manifest.ray_pod_monitor``, ``kubernetes_manifest.kuberay_service_monitor``."""

    objects: list[dict]

    def __init__(self, scope: Construct, id: str, props: RayMonitorsProps) -> None:
        super().__init__(scope, id)
        fm = ManifestFieldManager(name="terraform", force_conflicts=True)
        self.objects = [ray_pod_monitor(props.cluster_name, props.namespace),
                        kuberay_operator_service_monitor(props.operator_namespace or props.namespace)]
        Manifest(self, "ray_pod_monitor", manifest=self.objects[0], field_manager=fm)
        Manifest(Construct(self, "operator"), "kuberay_service_monitor", manifest=self.objects[1], field_manager=fm)
