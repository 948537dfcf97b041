"""Kubernetes conventions of the platform: how nodes are labelled and tainted, how pods select them.

Every node group carries ``usage=<role>``; pods choose their group by that label alone. GPU groups also carry
the NVIDIA taint, which only GPU pods (and the DaemonSets that serve GPU nodes) tolerate.
"""

from __future__ import annotations

import re
from decimal import Decimal

# The node label naming a node group's role; its values are the roles below.
NODE_ROLE_LABEL = "usage"
CORE_ROLE, GPU_ROLE, CPU_ROLE = "core", "gpu", "cpu"
NODE_ROLES = (CORE_ROLE, GPU_ROLE, CPU_ROLE)

# The extended resource the NVIDIA device plugin advertises, and the taint key GPU groups carry.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = GPU_RESOURCE
GPU_TAINT_VALUE = "true"

# EKS spells taint effects in upper snake case, Kubernetes in camel case.
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def node_selector(role: str) -> dict[str, str]:
    """The nodeSelector that puts a pod on the node group of ``role``. A fresh dict each call (YAML anchors)."""
    return {NODE_ROLE_LABEL: role}


def gpu_toleration() -> dict[str, str]:
    """Tolerates the GPU groups' taint, whatever its value."""
    return {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": TAINT_EFFECTS["NO_SCHEDULE"]}


def head_service_name(ray_cluster_name: str) -> str:
    """KubeRay names a RayCluster's head service ``<cluster>-head-svc``."""
    return f"{ray_cluster_name}-head-svc"


# ------------------------------------------------------------------------------------------- quantities
CPU_QUANTITY_RE = re.compile(r"^\d+(\.\d+)?m?$")
MEMORY_QUANTITY_RE = re.compile(r"^\d+(Ki|Mi|Gi|Ti)$")
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


def half_memory(quantity: str) -> str:
    """Half of a memory quantity, in its own unit (at least 1): Ray's default object-store share of /dev/shm."""
    n, unit = int(quantity[:-2]), quantity[-2:]
    return f"{max(n // 2, 1)}{unit}"
