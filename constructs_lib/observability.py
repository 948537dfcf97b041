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

import copy
import json
from dataclasses import dataclass, field

from cdktf_cdktf_provider_aws.eks_addon import EksAddon
from cdktf_cdktf_provider_helm.release import Release
from cdktf_cdktf_provider_kubernetes.config_map_v1 import ConfigMapV1, ConfigMapV1Metadata
from cdktf_cdktf_provider_kubernetes.manifest import Manifest, ManifestFieldManager
from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1, NamespaceV1Metadata
from cdktf_cdktf_provider_kubernetes.network_policy_v1 import (
    NetworkPolicyV1,
    NetworkPolicyV1Metadata,
    NetworkPolicyV1Spec,
    NetworkPolicyV1SpecIngress,
    NetworkPolicyV1SpecIngressFrom,
    NetworkPolicyV1SpecIngressFromNamespaceSelector,
    NetworkPolicyV1SpecIngressFromPodSelector,
    NetworkPolicyV1SpecIngressPorts,
    NetworkPolicyV1SpecPodSelector,
)
from constructs import Construct

from conventions.eks import CONTAINER_INSIGHTS_ADDON
from conventions.kubernetes import CORE_ROLE, node_selector, pod_security_labels
from conventions.monitoring import GRAFANA_NAME, GRAFANA_SERVICE_PORT, KPS_RELEASE
from conventions.ray import HEAD_PORTS, RAY_CLUSTER_LABEL, RAY_NODE_TYPE_LABEL

from .eks_addons import addon_configuration_values
from .iam import policy_document, statement
from .irsa_role import IrsaRole, IrsaRoleProps

PROMETHEUS_COMMUNITY_REPO = "https://prometheus-community.github.io/helm-charts"
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
    return f"http://{GRAFANA_NAME}.{monitoring_namespace}.svc:{GRAFANA_SERVICE_PORT}"


def prometheus_service_url(monitoring_namespace: str) -> str:
    return f"http://{KPS_RELEASE}-prometheus.{monitoring_namespace}.svc:9090"


# kube-prometheus-stack 79.7.1 values.yaml grafana.sidecar.datasources: the Prometheus datasource's name and uid.
GRAFANA_DATASOURCE_NAME = "Prometheus"
# The Grafana sidecar picks up ConfigMaps labelled so (kube-prometheus-stack 79.7.1 values.yaml
# grafana.sidecar.dashboards label and labelValue), in the namespaces its searchNamespace names: ours sets none,
# so only Grafana's own namespace (grafana chart 10.2.0 templates/_pod.tpl: no NAMESPACE env).
GRAFANA_DASHBOARD_LABEL = ("grafana_dashboard", "1")
# Grafana's pods (grafana chart 10.2.0 _helpers.tpl grafana.selectorLabels) and its container port (values
# service.targetPort 3000).
GRAFANA_POD_LABELS = {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": KPS_RELEASE}
GRAFANA_PORT = 3000
# Ray's fixed metrics ports on the head (ray 2.58.0 ray/_private/ray_constants.py AUTOSCALER_METRIC_PORT,
# DASHBOARD_METRIC_PORT), named as KubeRay's Prometheus guide names them on the head container.
HEAD_METRICS_PORTS = {"as-metrics": 44217, "dash-metrics": 44227}


def ray_head_env(monitoring_namespace: str, grafana_iframe_host: str, cluster_name: str) -> dict[str, str]:
    """The Ray dashboard's metrics settings (Ray 2.58 docs, "Embedding Grafana visualizations into Ray
    Dashboard"): the head queries Prometheus and Grafana in-cluster; the browser loads the embedded Grafana panels
    from ``grafana_iframe_host`` (a port-forward by default), with the datasource by name and the cluster filter
    (the ``Cluster`` variable of Ray's dashboards, the ray_io_cluster label our PodMonitor sets)."""
    return {
        "RAY_GRAFANA_HOST": grafana_service_url(monitoring_namespace),
        "RAY_PROMETHEUS_HOST": prometheus_service_url(monitoring_namespace),
        "RAY_PROMETHEUS_NAME": GRAFANA_DATASOURCE_NAME,
        "RAY_GRAFANA_IFRAME_HOST": grafana_iframe_host,
        "RAY_GRAFANA_CLUSTER_FILTER": cluster_name,
    }


def grafana_cookie_settings(grafana_iframe_host: str) -> dict:
    """Grafana's session cookie for the Ray dashboard's iframes. Behind an https URL the dashboard and Grafana may be
    different sites: the cookie must then be SameSite=None and Secure (Ray 2.58 docs, "User authentication for
    Grafana"). Through the port-forwards both are http://localhost, one site (the port is not part of it), and
    Grafana's default SameSite=Lax cookie goes with the iframe's requests."""
    if grafana_iframe_host.startswith("https://"):
        return {"cookie_samesite": "none", "cookie_secure": True}
    return {}


def _on_core() -> dict:
    """Placement of a kube-prometheus-stack workload on the core nodes: selected there, no tolerations (so never on
    GPU nodes), no node affinity (Prometheus and Alertmanager keep the chart's soft anti-affinity between their
    replicas, set by podAntiAffinity: soft)."""
    return {"nodeSelector": node_selector(CORE_ROLE), "tolerations": [], "affinity": {}}


def kube_prometheus_stack_values(grafana_iframe_host: str = "http://localhost:3000") -> dict:
    """Every workload's placement is stated: the operator, its admission-webhook patch Jobs (pre/post-install
    hooks), Prometheus, Alertmanager, Grafana and kube-state-metrics on core; node-exporter on every node.

    Grafana: no anonymous access (the chart generates the admin password into its Secret; `make grafana` reads it);
    embedding allowed, so the Ray dashboard's iframes show panels to a browser logged in to Grafana; dashboards
    from ConfigMaps in its own namespace only, with a Role instead of a ClusterRole that reads every Secret."""
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
            "grafana.ini": {"security": {"allow_embedding": True, **grafana_cookie_settings(grafana_iframe_host)},
                            "auth.anonymous": {"enabled": False}},
            "rbac": {"namespaced": True},
            # null deletes the chart's ALL: the sidecar then watches Grafana's namespace, where ours are.
            "sidecar": {"dashboards": {"enabled": True, "label": GRAFANA_DASHBOARD_LABEL[0],
                                       "labelValue": GRAFANA_DASHBOARD_LABEL[1], "searchNamespace": None}},
        },
    }


def ray_head_peer(cluster_name: str, namespace: str) -> dict:
    """The Ray head pod of a RayCluster, as a NetworkPolicy peer from another namespace."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {"matchLabels": {RAY_CLUSTER_LABEL: cluster_name, RAY_NODE_TYPE_LABEL: "head"}}}


def grafana_network_policy(monitoring_namespace: str, clients: list[dict]) -> dict:
    """Ingress to Grafana: its port only, from ``clients`` (the Ray head, whose dashboard checks Grafana's health;
    Prometheus, which scrapes Grafana's /metrics through the chart's ServiceMonitor). Your browser reaches it
    through `kubectl port-forward`, which the policy does not see (the kubelet connects inside the pod's network
    namespace); the sidecars talk to Grafana on localhost."""
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "grafana-ingress", "namespace": monitoring_namespace},
        "spec": {
            "podSelector": {"matchLabels": dict(GRAFANA_POD_LABELS)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [copy.deepcopy(c) for c in clients],
                         "ports": [{"protocol": "TCP", "port": GRAFANA_PORT}]}],
        },
    }


def dashboard_config_map(name: str, namespace: str, dashboard_json: str) -> dict:
    """A dashboard as the Grafana sidecar picks it up: labelled GRAFANA_DASHBOARD_LABEL, in Grafana's namespace."""
    label, value = GRAFANA_DASHBOARD_LABEL
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"dashboard-{name}", "namespace": namespace, "labels": {label: value}},
            "data": {f"{name}.json": dashboard_json}}


def prometheus_peer(monitoring_namespace: str) -> dict:
    """kube-prometheus-stack's Prometheus pods, as a NetworkPolicy peer (prometheus-operator v0.86.2 labels the
    pods it runs app.kubernetes.io/name=prometheus; the API server labels every namespace with its name)."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": monitoring_namespace}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def ray_pod_monitor(cluster_name: str, namespace: str) -> dict:
    """Every Ray pod (head and workers) of the cluster, on the container port named ``metrics``; the head also on
    the autoscaler's and the dashboard's metrics ports (only the head container has those names)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
        "metadata": {"name": f"{cluster_name}-ray", "namespace": namespace, "labels": dict(MONITOR_LABELS)},
        "spec": {
            "jobLabel": "ray",
            "selector": {"matchLabels": {RAY_CLUSTER_LABEL: cluster_name}},
            "podMetricsEndpoints": [{
                "port": port,
                "path": "/metrics",
                "interval": "30s",
                # Ray's Grafana dashboards filter on ray_io_cluster.
                "relabelings": [{"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_label_ray_io_cluster"],
                                 "targetLabel": "ray_io_cluster"}],
            } for port in ("metrics", *HEAD_METRICS_PORTS)],
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
    grafana_iframe_host: str = "http://localhost:3000"
    # Our DCGM exporter is on: the Container Insights add-on's own is turned off (conventions/eks.py)
    dcgm_exporter: bool = False


class ObservabilityAddons(Construct):
    """Addresses: ``helm_release.kube_prometheus_stack`` (+ ``kubernetes_namespace_v1.monitoring``),
    ``aws_eks_addon.container_insights`` (+ ``aws_iam_role.container_insights``)."""

    kube_prometheus_stack: Release | None = None
    namespace: NamespaceV1 | None = None

    def __init__(self, scope: Construct, id: str, props: ObservabilityAddonsProps) -> None:
        super().__init__(scope, id)
        if props.kube_prometheus_stack:
            ns = NamespaceV1(self, "monitoring", metadata=NamespaceV1Metadata(
                name=props.monitoring_namespace, labels=pod_security_labels(*MONITORING_POD_SECURITY)))
            self.namespace = ns
            self.kube_prometheus_stack = Release(
                self, "kube_prometheus_stack", name=KPS_RELEASE, namespace=ns.metadata.name,
                repository=PROMETHEUS_COMMUNITY_REPO, chart="kube-prometheus-stack",
                version=props.kube_prometheus_stack_chart_version,
                values=[json.dumps(kube_prometheus_stack_values(props.grafana_iframe_host))],
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
                     configuration_values=addon_configuration_values(CONTAINER_INSIGHTS_ADDON,
                                                                     dcgm_exporter=props.dcgm_exporter),
                     resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE")


def _typed_peer(peer: dict) -> NetworkPolicyV1SpecIngressFrom:
    pod, ns = peer.get("podSelector"), peer.get("namespaceSelector")
    return NetworkPolicyV1SpecIngressFrom(
        pod_selector=NetworkPolicyV1SpecIngressFromPodSelector(match_labels=pod["matchLabels"]) if pod else None,
        namespace_selector=(NetworkPolicyV1SpecIngressFromNamespaceSelector(match_labels=ns["matchLabels"])
                            if ns else None))


@dataclass(frozen=True)
class GrafanaProvisioningProps:
    namespace: str  # Grafana's (kube-prometheus-stack's) namespace; a reference orders us after it
    dashboards: dict[str, str]  # ConfigMap name suffix -> dashboard JSON
    clients: list[dict] = field(default_factory=list)  # NetworkPolicy peers that may reach Grafana


class GrafanaProvisioning(Construct):
    """The dashboards Grafana loads (``kubernetes_config_map_v1.dashboard_<name>``) and who may reach Grafana
    (``kubernetes_network_policy_v1.grafana``). Plain Kubernetes kinds: no CRD at plan time."""

    objects: list[dict]

    def __init__(self, scope: Construct, id: str, props: GrafanaProvisioningProps) -> None:
        super().__init__(scope, id)
        self.objects = []
        for name, content in sorted(props.dashboards.items()):
            obj = dashboard_config_map(name, props.namespace, content)
            self.objects.append(obj)
            meta = obj["metadata"]
            ConfigMapV1(self, f"dashboard_{name.replace('-', '_')}", data=obj["data"], metadata=ConfigMapV1Metadata(
                name=meta["name"], namespace=meta["namespace"], labels=meta["labels"]))
        policy = grafana_network_policy(props.namespace, props.clients)
        self.objects.append(policy)
        spec = policy["spec"]
        NetworkPolicyV1(
            self, "grafana",
            metadata=NetworkPolicyV1Metadata(name=policy["metadata"]["name"], namespace=props.namespace),
            spec=NetworkPolicyV1Spec(
                pod_selector=NetworkPolicyV1SpecPodSelector(match_labels=spec["podSelector"]["matchLabels"]),
                policy_types=spec["policyTypes"],
                ingress=[NetworkPolicyV1SpecIngress(
                    from_=[_typed_peer(p) for p in rule["from"]],
                    ports=[NetworkPolicyV1SpecIngressPorts(port=str(p["port"]), protocol=p["protocol"])
                           for p in rule["ports"]]) for rule in spec["ingress"]]))


@dataclass(frozen=True)
class RayAlertsProps:
    rule: dict  # the PrometheusRule (observability.alerts.prometheus_rule)


class RayAlerts(Construct):
    """``kubernetes_manifest.ray_alerts``: a custom kind, so in the ray-cluster stack like the monitors."""

    def __init__(self, scope: Construct, id: str, props: RayAlertsProps) -> None:
        super().__init__(scope, id)
        Manifest(self, "ray_alerts", manifest=props.rule,
                 field_manager=ManifestFieldManager(name="terraform", force_conflicts=True))


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
