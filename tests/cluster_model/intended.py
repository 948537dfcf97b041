"""Where each workload of the deployment is meant to run: THE table the cluster-model tests check against.

Keys are patterns (fnmatch) over workload keys (tests/cluster_model/workloads.py). "Lands on" means: a DaemonSet
has a pod on every one of those nodes and on no other; any other pod fits on every instance type of those node
groups and on no node of another group. Each entry also says in which deployments the workload exists at all.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from config import AppConfig
from conventions.kubernetes import CORE_ROLE

from .model import ClusterModel
from .workloads import Workload


@dataclass(frozen=True)
class Where:
    text: str
    nodes: Callable[[ClusterModel, dict[str, str], AppConfig, Workload], frozenset[str]]


def _role(role: str) -> Where:
    return Where(f"the {role} node group", lambda m, roles, cfg, w: frozenset(
        n for n, node in m.nodes.items() if roles.get(node.group) == role))


def _worker_group(m: ClusterModel, roles: dict[str, str], cfg: AppConfig, w: Workload) -> frozenset[str]:
    group_name = w.key.rsplit("/", 1)[-1]
    group = next(g.node_group for g in cfg.ray.worker_groups if g.name == group_name)
    return frozenset(n for n, node in m.nodes.items() if node.group == group)


CORE = _role(CORE_ROLE)
EVERY_NODE = Where("every node", lambda m, roles, cfg, w: frozenset(m.nodes))
GPU_NODES = Where("every GPU node", lambda m, roles, cfg, w: frozenset(n for n, node in m.nodes.items() if node.gpus))
NOWHERE = Where("no node", lambda m, roles, cfg, w: frozenset())
WORKER_GROUP = Where("the node group of its Ray worker group (ray.worker_groups[].node_group)", _worker_group)

ALWAYS: Callable[[AppConfig], bool] = lambda cfg: True  # noqa: E731
HAS_GPU: Callable[[AppConfig], bool] = lambda cfg: cfg.cluster.has_gpu  # noqa: E731
KUBE_PROMETHEUS_STACK: Callable[[AppConfig], bool] = lambda cfg: cfg.observability.kube_prometheus_stack  # noqa: E731
CONTAINER_INSIGHTS: Callable[[AppConfig], bool] = lambda cfg: cfg.observability.container_insights  # noqa: E731
DCGM_EXPORTER: Callable[[AppConfig], bool] = lambda cfg: cfg.observability.dcgm_exporter  # noqa: E731
# The add-on's own DCGM exporter: only while ours is off (conventions/eks.py CONTAINER_INSIGHTS_WITHOUT_DCGM).
ADDON_DCGM_EXPORTER: Callable[[AppConfig], bool] = (  # noqa: E731
    lambda cfg: cfg.observability.container_insights and not cfg.observability.dcgm_exporter)
ORCHESTRATOR: Callable[[AppConfig], bool] = lambda cfg: cfg.orchestrator_enabled  # noqa: E731
CLUSTER_AUTOSCALER: Callable[[AppConfig], bool] = lambda cfg: cfg.cluster.autoscaler == "cluster-autoscaler"  # noqa: E731
KARPENTER: Callable[[AppConfig], bool] = lambda cfg: cfg.cluster.autoscaler == "karpenter"  # noqa: E731

# pattern: (where it must land, in which deployments it exists)
INTENDED: dict[str, tuple[Where, Callable[[AppConfig], bool]]] = {
    # EKS managed add-ons (infra stack)
    "addon/vpc-cni/aws-node": (EVERY_NODE, ALWAYS),
    "addon/kube-proxy/kube-proxy": (EVERY_NODE, ALWAYS),
    "addon/eks-pod-identity-agent/eks-pod-identity-agent": (EVERY_NODE, ALWAYS),
    "addon/coredns/coredns": (CORE, ALWAYS),
    "addon/aws-fsx-csi-driver/fsx-csi-controller": (CORE, ALWAYS),
    "addon/aws-fsx-csi-driver/fsx-csi-node": (EVERY_NODE, ALWAYS),  # GPU workers mount FSx too
    # Container Insights (ray stack, observability.container_insights)
    "addon/amazon-cloudwatch-observability/controller-manager": (CORE, CONTAINER_INSIGHTS),
    "addon/amazon-cloudwatch-observability/cloudwatch-agent": (EVERY_NODE, CONTAINER_INSIGHTS),
    "addon/amazon-cloudwatch-observability/fluent-bit": (EVERY_NODE, CONTAINER_INSIGHTS),
    "addon/amazon-cloudwatch-observability/dcgm-exporter": (GPU_NODES, ADDON_DCGM_EXPORTER),
    "addon/amazon-cloudwatch-observability/neuron-monitor": (NOWHERE, CONTAINER_INSIGHTS),  # Trainium/Inferentia
    "addon/amazon-cloudwatch-observability/*-windows*": (NOWHERE, CONTAINER_INSIGHTS),  # Windows nodes
    # Helm releases (ray stack)
    "helm/nvidia-device-plugin/device-plugin": (GPU_NODES, HAS_GPU),
    "helm/nvidia-device-plugin/mps-control-daemon": (NOWHERE, HAS_GPU),  # only nodes labelled for MPS sharing
    "helm/cluster-autoscaler/cluster-autoscaler": (CORE, CLUSTER_AUTOSCALER),
    # Karpenter's controller: on core, never on a node it launched (it would remove its own node)
    "helm/karpenter/controller": (CORE, KARPENTER),
    "helm/kuberay-operator/kuberay-operator": (CORE, ALWAYS),
    "helm/kube-prometheus-stack/operator": (CORE, KUBE_PROMETHEUS_STACK),
    "helm/kube-prometheus-stack/admission-create": (CORE, KUBE_PROMETHEUS_STACK),
    "helm/kube-prometheus-stack/admission-patch": (CORE, KUBE_PROMETHEUS_STACK),
    "helm/kube-prometheus-stack/prometheus": (CORE, KUBE_PROMETHEUS_STACK),
    "helm/kube-prometheus-stack/alertmanager": (CORE, KUBE_PROMETHEUS_STACK),
    "helm/kube-prometheus-stack/kube-state-metrics": (CORE, KUBE_PROMETHEUS_STACK),
    "helm/kube-prometheus-stack/grafana": (CORE, KUBE_PROMETHEUS_STACK),
    "helm/kube-prometheus-stack/node-exporter": (EVERY_NODE, KUBE_PROMETHEUS_STACK),
    # GPU metrics (ray stack, observability.dcgm_exporter): every GPU node, Karpenter's included, by its GPU label
    "helm/nvidia-dcgm-exporter/dcgm-exporter": (GPU_NODES, DCGM_EXPORTER),
    # The orchestrator's Jobs, built by its function from its packaged steps (ray stack)
    "lambda/ray_orchestrator/*": (CORE, ORCHESTRATOR),
    # The RayCluster (ray-cluster stack): KubeRay's head and worker pods
    "RayCluster/*/head": (CORE, ALWAYS),
    "RayCluster/*/worker/*": (WORKER_GROUP, ALWAYS),
    # scripts/render_jobs.py: the in-cluster submit Job and the RayJob's submitter
    "render_jobs/submit-job.yaml/Job/*": (CORE, ALWAYS),
    "render_jobs/rayjob.yaml/RayJob/*/submitter": (CORE, ALWAYS),
}


def intended_for(key: str) -> str | None:
    """The one INTENDED pattern a workload key matches (None: none; two or more is an error of the table)."""
    hits = [p for p in INTENDED if fnmatch.fnmatchcase(key, p)]
    if len(hits) > 1:
        raise AssertionError(f"{key} matches several INTENDED patterns: {hits}")
    return hits[0] if hits else None


def placement_mismatch(model: ClusterModel, roles: dict[str, str], cfg: AppConfig, key: str,
                       where: Where) -> str | None:
    """Why a workload does not land exactly where intended (None: it does)."""
    w, placement = model.workloads[key], model.placements[key]
    expected = where.nodes(model, roles, cfg, w)
    if where is not NOWHERE and not expected:
        return f"{key}: meant for {where.text}, and the deployment has no such node"
    if placement.nodes == expected:
        return None
    return (f"{key} ({w.source}) is meant for {where.text} {sorted(expected)}, and lands on "
            f"{sorted(placement.nodes)}: {placement.explain()}")
