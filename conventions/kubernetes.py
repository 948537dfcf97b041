"""Kubernetes conventions of the platform: how nodes are labelled and tainted, how pods select them.

Every node group carries ``usage=<role>`` and ``ray-eks/node-group=<name>``: what is shared by role (the Ray head
and the system pods on the core group, DaemonSets on GPU nodes) selects the role; each Ray worker group selects its
own node group, so two groups of one role never take each other's workers. GPU groups also carry the NVIDIA taint,
which only GPU pods (and the DaemonSets that serve GPU nodes) tolerate. Karpenter's nodes carry the same labels and
taints as a managed group's (their NodePool's template, constructs_lib/manifests/karpenter.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Protocol

# The node label naming a node group's role; its values are the roles below.
NODE_ROLE_LABEL = "usage"
CORE_ROLE, GPU_ROLE, CPU_ROLE = "core", "gpu", "cpu"
# The node label naming the node group (cluster.node_groups[].name) a node belongs to, on managed node groups and
# Karpenter NodePools alike: Ray worker groups select it.
NODE_GROUP_LABEL = "ray-eks/node-group"

# The extended resource the NVIDIA device plugin advertises, and the taint key GPU groups carry.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = GPU_RESOURCE
GPU_TAINT_VALUE = "true"

# GPU nodes also carry the labels the NVIDIA device plugin and cluster-autoscaler key on: the device plugin chart's
# own selector label (nodeadm sets it too, from kubelet 1.35), and the accelerator label cluster-autoscaler's AWS
# provider reads to know a node's GPU type before the device plugin has advertised it (its README, "Special note
# on GPU instances"; values from config/instance_types.yaml).
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
# Labels the platform sets on node groups; config labels must not override them.
RESERVED_NODE_LABELS = (NODE_ROLE_LABEL, NODE_GROUP_LABEL, GPU_PRESENT_LABEL, ACCELERATOR_LABEL)


def gpu_node_labels(accelerator: str) -> dict[str, str]:
    return {GPU_PRESENT_LABEL: "true", ACCELERATOR_LABEL: accelerator}


# EKS spells taint effects in upper snake case, Kubernetes in camel case.
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


class NodeTaint(Protocol):
    """A node group's taint as config and the constructs both hold it (effect in EKS's spelling)."""

    @property
    def key(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def effect(self) -> str: ...


def cluster_autoscaler_tags(cluster_name: str, labels: Mapping[str, str],
                            taints: Sequence[NodeTaint]) -> dict[str, str]:
    """A node group's tags for cluster-autoscaler: auto-discovery (enabled, owned by the cluster) and the node
    template it scales from zero with (one tag per label, one per taint key)."""
    return {
        "k8s.io/cluster-autoscaler/enabled": "true",
        f"k8s.io/cluster-autoscaler/{cluster_name}": "owned",
        **{f"k8s.io/cluster-autoscaler/node-template/label/{k}": v for k, v in labels.items()},
        **{f"k8s.io/cluster-autoscaler/node-template/taint/{t.key}": f"{t.value}:{TAINT_EFFECTS[t.effect]}"
           for t in taints},
    }


def node_selector(role: str) -> dict[str, str]:
    """The nodeSelector that puts a pod on the node group of ``role``. A fresh dict each call (YAML anchors)."""
    return {NODE_ROLE_LABEL: role}


def node_group_selector(node_group: str) -> dict[str, str]:
    """The nodeSelector that puts a pod on the nodes of one node group (managed or a Karpenter NodePool)."""
    return {NODE_GROUP_LABEL: node_group}


# Ray pods survive node churn: the node autoscalers leave a node alone while a Ray pod runs on it. Both go on every
# Ray pod, idle workers included: only Ray knows whether a worker is busy, and the Ray autoscaler removes idle
# workers itself after idle_timeout_seconds, after which the node is empty and goes (docs/ray-cluster.md).
# - Karpenter (aws/karpenter-provider-aws v1.14.1 website/content/en/preview/concepts/disruption.md "Pod-Level
#   Controls"): "true" keeps consolidation off the node and the termination controller from evicting the pod. Our
#   NodePools set terminationGracePeriod, which makes such a node a drift candidate (their Drifted budget of 0 stops
#   that) and bounds a forced deletion (Spot interruption, node repair): the pod gets its own grace period, then the
#   node goes (conventions/karpenter.py).
# - cluster-autoscaler (kubernetes/autoscaler cluster-autoscaler/FAQ.md "What types of pods can prevent CA from
#   removing a node?"): "false" keeps the node from scale-down while the pod runs.
KARPENTER_DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
CLUSTER_AUTOSCALER_SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


def churn_protection_annotations() -> dict[str, str]:
    return {KARPENTER_DO_NOT_DISRUPT: "true", CLUSTER_AUTOSCALER_SAFE_TO_EVICT: "false"}


def gpu_toleration() -> dict[str, str]:
    """Tolerates the GPU groups' taint, whatever its value."""
    return {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": TAINT_EFFECTS["NO_SCHEDULE"]}


def head_service_name(ray_cluster_name: str) -> str:
    """KubeRay names a RayCluster's head service ``<cluster>-head-svc``."""
    return f"{ray_cluster_name}-head-svc"


# ------------------------------------------------------------------------------------------- Ray job API access
# The key of the token in the Secret KubeRay creates for a RayCluster with authOptions.mode token
# (ray-project/kuberay v1.7.0 ray-operator/controllers/ray/utils/constant.go RAY_AUTH_TOKEN_SECRET_KEY).
RAY_AUTH_TOKEN_KEY = "auth_token"
RAY_AUTH_ENV = {"mode": "RAY_AUTH_MODE", "token": "RAY_AUTH_TOKEN"}
# Pods that submit jobs to a RayCluster's dashboard (8265) from inside the cluster carry this label, valued with
# the cluster's name; the head's NetworkPolicy admits them (and nothing else outside the Ray pods).
SUBMITTER_LABEL = "ray-eks/submits-to"


def submitter_labels(ray_cluster_name: str) -> dict[str, str]:
    return {SUBMITTER_LABEL: ray_cluster_name}


def auth_secret_name(ray_cluster_name: str) -> str:
    """The Secret KubeRay v1.7.0 creates for a token-auth RayCluster: ``utils.CheckName(cluster name)``
    (controllers/ray/raycluster_controller.go reconcileAuthSecret; utils/util.go CheckName: the last 50
    characters, and an "r" in place of a leading digit or punctuation)."""
    s = ray_cluster_name[-50:]
    if s[0].isdigit() or not s[0].isalnum():
        s = "r" + s[1:]
    return s


# ------------------------------------------------------------------------------------------- quantities
CPU_QUANTITY_RE = re.compile(r"^\d+(\.\d+)?m?\Z", re.ASCII)
MEMORY_QUANTITY_RE = re.compile(r"^\d+(Ki|Mi|Gi|Ti)\Z", re.ASCII)
_MEMORY_UNITS_MIB = {"Ki": Decimal(1) / 1024, "Mi": Decimal(1), "Gi": Decimal(1024), "Ti": Decimal(1024 * 1024)}


def cpu_millicores(quantity: str) -> int:
    """"4" -> 4000, "500m" -> 500, "1.5" -> 1500."""
    q = str(quantity)
    if not CPU_QUANTITY_RE.match(q):
        raise ValueError(f"not a CPU quantity: {q!r}")
    if q.endswith("m"):
        return int(Decimal(q[:-1]))
    return int(Decimal(q) * 1000)


def memory_mebibytes(quantity: str) -> Decimal:
    """"16Gi" -> 16384, "512Mi" -> 512 (binary units only: what the config accepts)."""
    if not MEMORY_QUANTITY_RE.match(quantity):
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(quantity[:-2]) * _MEMORY_UNITS_MIB[quantity[-2:]]


def mebibytes_quantity(mib: int) -> str:
    """A memory quantity for a number of MiB: in Gi when whole."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def half_memory(quantity: str) -> str:
    """Half of a memory quantity, in its own unit (at least 1): Ray's default object-store share of /dev/shm."""
    n, unit = int(quantity[:-2]), quantity[-2:]
    return f"{max(n // 2, 1)}{unit}"


# ------------------------------------------------------------------------------------------- Ray pods' other containers
# What runs in a Ray pod besides Ray itself; node-fit validation (config/capacity.py) counts these the way the
# scheduler does (see pod_requests). Requests equal limits unless both are given.
# Our init container that chowns the FSx export directory (constructs_lib/ray_manifests.py).
FSX_INIT_RESOURCES = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
# The Ray autoscaler sidecar KubeRay adds to the head pod, sized by spec.autoscalerOptions.resources.
AUTOSCALER_RESOURCES = {"cpu": "500m", "memory": "512Mi"}
# The init container KubeRay v1.7.0 injects into every worker pod (controllers/ray/common/pod.go
# DefaultWorkerPodTemplate, "wait-gcs-ready": requests = limits = 200m/256Mi).
KUBERAY_WORKER_INIT_REQUESTS = {"cpu": "200m", "memory": "256Mi"}


def pod_requests(containers: Sequence[Mapping[str, str]],
                 init_containers: Sequence[Mapping[str, str]] = ()) -> dict[str, Decimal]:
    """What the scheduler reserves for a pod: per resource, the larger of the largest init container's request and
    the sum of the app containers' requests. Quantities in millicores (cpu), MiB (memory), count (others)."""

    def amount(resource: str, q: str) -> Decimal:
        if resource == "cpu":
            return Decimal(cpu_millicores(q))
        if resource == "memory":
            return memory_mebibytes(q)
        return Decimal(q)

    out: dict[str, Decimal] = {}
    for resource in {r for c in (*containers, *init_containers) for r in c}:
        total = sum((amount(resource, c[resource]) for c in containers if resource in c), Decimal(0))
        init = max((amount(resource, c[resource]) for c in init_containers if resource in c), default=Decimal(0))
        out[resource] = max(total, init)
    return out


# ------------------------------------------------------------------------------------------- Pod Security
# Pod Security admission levels (kubernetes.io/docs/concepts/security/pod-security-standards), most to least open.
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
POD_SECURITY_LABEL = "pod-security.kubernetes.io"


def pod_security_labels(enforce: str, warn: str | None = None) -> dict[str, str]:
    """The namespace labels of Pod Security admission: ``enforce`` refuses pods above that level; ``warn`` (and
    ``audit``, the same level) report pods that would fail a stricter one, without refusing them."""
    warn = warn or enforce
    for level in (enforce, warn):
        if level not in POD_SECURITY_LEVELS:
            raise ValueError(f"not a Pod Security level: {level!r}")
    return {f"{POD_SECURITY_LABEL}/enforce": enforce, f"{POD_SECURITY_LABEL}/audit": warn,
            f"{POD_SECURITY_LABEL}/warn": warn}
