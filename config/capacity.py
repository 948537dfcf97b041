"""What a pod can get on one node of a node group: the node's allocatable after the kubelet's reservations, minus the
requests of the DaemonSets we install there. Config validation rejects Ray pods that could never fit.

    pod room = capacity - kube-reserved - eviction threshold - DaemonSet requests

- capacity: vCPUs and GPUs from the catalogue (config/instance_types.yaml); memory is what the kernel reports, below
  the instance's nominal size. We take Karpenter's default estimate of that gap, 7.5% (plus 64 MiB of CMA on
  Graviton) (aws/karpenter-provider-aws@1d927085 pkg/operator/options/options.go vm-memory-overhead-percent,
  pkg/providers/instancetype/types.go memory()); measured gaps are 1.6-5.2% on nodes of 32 GiB and more, up to
  17% on the smallest. cluster-autoscaler's scale-from-zero template counts none of this (allocatable = nominal
  capacity, aws_manager.go buildNodeFromTemplate), so a pod sized to the nominal size makes it add nodes the pod
  never fits.
- kube-reserved: nodeadm's formulas for AL2023 (awslabs/amazon-eks-ami v20260724 nodeadm/internal/kubelet/config.go
  getCPUMillicoresToReserve, getMemoryMebibytesToReserve: 11 MiB per ENI max pod + 255 MiB); Bottlerocket uses
  the same ones. No system-reserved. Eviction threshold: memory.available 100Mi.
- DaemonSets: ``DAEMONSETS`` below, the one table of what every DaemonSet we install requests on a node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Literal

from conventions.kubernetes import (
    AUTOSCALER_RESOURCES,
    FSX_INIT_RESOURCES,
    GPU_RESOURCE,
    GPU_ROLE,
    KUBERAY_WORKER_INIT_REQUESTS,
    pod_requests,
)

from .instances import InstanceType

VM_MEMORY_OVERHEAD = Decimal("0.075")
ARM64_CMA_MIB = 64
EVICTION_MEMORY_MIB = 100
# nodeadm's kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% of the rest.
_CPU_RESERVE_TIERS = ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, None, 25))  # per 10000


def kube_reserved_cpu_millicores(vcpu: int) -> int:
    total = vcpu * 1000
    reserved = 0
    for start, end, per10k in _CPU_RESERVE_TIERS:
        top = total if end is None else min(total, end)
        if top > start:
            reserved += (top - start) * per10k // 10000
    return reserved


def kube_reserved_memory_mebibytes(max_pods: int) -> int:
    return 11 * max_pods + 255


def memory_capacity_mebibytes(t: InstanceType) -> int:
    """Estimated node.status.capacity.memory: the nominal size less the kernel's and firmware's share."""
    mem = Decimal(t.memory_mib - (ARM64_CMA_MIB if t.architecture == "arm64" else 0))
    return int(mem - (mem * VM_MEMORY_OVERHEAD).to_integral_value(ROUND_CEILING))


# ----------------------------------------------------------------------------------------------- DaemonSets
@dataclass(frozen=True)
class DaemonSet:
    """A DaemonSet we install, and what each of its pods requests (per container, as the chart or add-on renders
    it by default; the pod's reservation follows ``pod_requests``)."""

    name: str  # the DaemonSet's name in the cluster
    source: str  # the chart or EKS add-on, and where its requests were read
    nodes: Literal["all", "gpu"]  # every node, or GPU nodes only (what its placement selects)
    # container_insights_gpu: the add-on's DCGM exporter, off when ours is on (conventions/eks.py)
    installed_with: Literal["always", "kube_prometheus_stack", "container_insights", "container_insights_gpu",
                            "dcgm_exporter"]
    containers: tuple[dict[str, str], ...] = ()
    init_containers: tuple[dict[str, str], ...] = ()
    verified: bool = True  # False: no public manifest; a conservative value

    @property
    def requests(self) -> dict[str, Decimal]:
        return pod_requests(list(self.containers), list(self.init_containers))


DAEMONSETS: tuple[DaemonSet, ...] = (
    DaemonSet("aws-node", "EKS add-on vpc-cni (aws/amazon-vpc-cni-k8s v1.23.0 charts/aws-vpc-cni: aws-node and "
              "aws-eks-nodeagent 25m each, init aws-vpc-cni-init 25m)", "all", "always",
              containers=({"cpu": "25m"}, {"cpu": "25m"}), init_containers=({"cpu": "25m"},)),
    # The one recorded value of kube-proxy's requests: the cluster model (tests/reference/eks-addons/kube-proxy.yaml)
    # renders this entry, so the validation and the model cannot disagree on it.
    DaemonSet("kube-proxy", "EKS add-on kube-proxy (its manifest is not public: 100m CPU as EKS's DaemonSet "
              "requests it, no memory request (aws/containers-roadmap#1509))", "all", "always",
              containers=({"cpu": "100m"},), verified=False),
    DaemonSet("eks-pod-identity-agent", "EKS add-on eks-pod-identity-agent (aws/eks-pod-identity-agent v0.1.37 "
              "chart 1.2.0: resources {})", "all", "always"),
    DaemonSet("fsx-csi-node", "EKS add-on aws-fsx-csi-driver (kubernetes-sigs/aws-fsx-csi-driver chart 1.17.0: "
              "fsx-plugin 10m/40Mi, node-driver-registrar and liveness-probe 10m/32Mi each; tolerates all taints)",
              "all", "always",
              containers=({"cpu": "10m", "memory": "40Mi"}, {"cpu": "10m", "memory": "32Mi"},
                          {"cpu": "10m", "memory": "32Mi"})),
    DaemonSet("nvidia-device-plugin", "Helm chart nvidia-device-plugin 0.18.0 (resources {}); only on GPU nodes",
              "gpu", "always"),
    DaemonSet("kube-prometheus-stack-prometheus-node-exporter", "Helm chart kube-prometheus-stack 79.7.1, "
              "prometheus-node-exporter 4.49.1 (resources {})", "all", "kube_prometheus_stack"),
    DaemonSet("cloudwatch-agent", "EKS add-on amazon-cloudwatch-observability (aws-observability/helm-charts "
              "6.4.0: 250m/128Mi)", "all", "container_insights", containers=({"cpu": "250m", "memory": "128Mi"},)),
    DaemonSet("fluent-bit", "EKS add-on amazon-cloudwatch-observability (6.4.0: 50m/25Mi)", "all",
              "container_insights", containers=({"cpu": "50m", "memory": "25Mi"},)),
    DaemonSet("dcgm-exporter", "EKS add-on amazon-cloudwatch-observability (6.4.0: 250m/128Mi; its affinity lists "
              "NVIDIA instance types); off when ours is on", "gpu", "container_insights_gpu",
              containers=({"cpu": "250m", "memory": "128Mi"},)),
    DaemonSet("nvidia-dcgm-exporter", "Helm chart dcgm-exporter 4.8.2 (NVIDIA/dcgm-exporter 4.5.3-4.8.2 "
              "deployment/values.yaml: 100m/128Mi); only on GPU nodes", "gpu", "dcgm_exporter",
              containers=({"cpu": "100m", "memory": "128Mi"},)),
)


def daemonsets_on(role: str, *, kube_prometheus_stack: bool, container_insights: bool,
                  dcgm_exporter: bool = False) -> list[DaemonSet]:
    """The DaemonSets that put a pod on every node of a group with ``role``, given what the config installs."""
    installed = {"always": True, "kube_prometheus_stack": kube_prometheus_stack,
                 "container_insights": container_insights,
                 "container_insights_gpu": container_insights and not dcgm_exporter, "dcgm_exporter": dcgm_exporter}
    return [d for d in DAEMONSETS if installed[d.installed_with] and (d.nodes == "all" or role == GPU_ROLE)]


# ----------------------------------------------------------------------------------------------- allocatable
@dataclass(frozen=True)
class PodRoom:
    """What one pod can request on an otherwise empty node (cpu in millicores, memory in MiB)."""

    instance: InstanceType
    cpu_millicores: int
    memory_mebibytes: int
    gpus: int

    def fits(self, requests: dict[str, Decimal]) -> dict[str, bool]:
        room = {"cpu": self.cpu_millicores, "memory": self.memory_mebibytes, GPU_RESOURCE: self.gpus}
        return {r: requests.get(r, Decimal(0)) <= room[r] for r in room}


def pod_room(t: InstanceType, role: str, *, kube_prometheus_stack: bool, container_insights: bool,
             dcgm_exporter: bool = False) -> PodRoom:
    cpu = t.vcpu * 1000 - kube_reserved_cpu_millicores(t.vcpu)
    memory = memory_capacity_mebibytes(t) - kube_reserved_memory_mebibytes(t.max_pods) - EVICTION_MEMORY_MIB
    for d in daemonsets_on(role, kube_prometheus_stack=kube_prometheus_stack, container_insights=container_insights,
                           dcgm_exporter=dcgm_exporter):
        r = d.requests
        cpu -= int(r.get("cpu", Decimal(0)).to_integral_value(ROUND_CEILING))
        memory -= int(r.get("memory", Decimal(0)).to_integral_value(ROUND_CEILING))
    return PodRoom(instance=t, cpu_millicores=cpu, memory_mebibytes=memory, gpus=t.nvidia_gpus)


def pods_per_node(room: PodRoom, requests: dict[str, Decimal]) -> int:
    """How many pods with these requests one otherwise empty node holds (CPU, memory and GPUs; pod slots aside)."""
    room_of = {"cpu": room.cpu_millicores, "memory": room.memory_mebibytes, GPU_RESOURCE: room.gpus}
    counts = [int(Decimal(room_of[r]) // q) for r, q in requests.items() if r in room_of and q > 0]
    return max(min(counts), 0) if counts else 0


# ----------------------------------------------------------------------------------------------- Ray pods
def ray_worker_pod_requests(cpu: str, memory: str, gpus: int) -> dict[str, Decimal]:
    """A Ray worker pod as the scheduler sees it: the Ray container, our FSx init container and KubeRay's
    wait-gcs-ready init container (constructs_lib/ray_manifests.py builds the same pod)."""
    ray = {"cpu": cpu, "memory": memory, **({GPU_RESOURCE: str(gpus)} if gpus else {})}
    return pod_requests([ray], [FSX_INIT_RESOURCES["requests"], KUBERAY_WORKER_INIT_REQUESTS])


def ray_head_pod_requests(cpu: str, memory: str) -> dict[str, Decimal]:
    """The Ray head pod: the Ray container, the autoscaler sidecar KubeRay adds, our FSx init container."""
    return pod_requests([{"cpu": cpu, "memory": memory}, AUTOSCALER_RESOURCES], [FSX_INIT_RESOURCES["requests"]])


def _gib(mib: Decimal | int) -> str:
    return f"{math.floor(Decimal(mib) / 1024 * 10) / 10:g}Gi"


def _cpu(millicores: Decimal | int) -> str:
    m = int(millicores)
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"


def misfit(room: PodRoom, group: str, requests: dict[str, Decimal], asked: dict[str, str],
           sidecars: dict[str, Decimal]) -> tuple[str, str] | None:
    """The first resource a pod does not get on a node, as (field, message), or None when it fits.

    ``asked``: the config's values by field (cpu, memory, gpus); ``sidecars``: what the pod's other containers add
    to them (the head's autoscaler), so that "at most" is a value for the field itself.
    """
    t = room.instance
    where = f"one {t.name} node of node group {group!r} ({t.describe})"
    fits = room.fits(requests)
    if not fits[GPU_RESOURCE]:
        return "gpus", f"{asked['gpus']} GPUs do not fit {where}; at most {room.gpus}"
    left = "left for pods after kube-reserved{} and the DaemonSets we install"
    also = " (the Ray autoscaler sidecar takes {})" if sidecars else ""
    if not fits["cpu"]:
        most = room.cpu_millicores - int(sidecars.get("cpu", 0))
        cap = f"at most {_cpu(most)}" if most > 0 else "no Ray pod fits; use a larger instance type"
        return "cpu", (f"{asked['cpu']} does not fit {where}: {_cpu(room.cpu_millicores)} CPU is {left.format('')}"
                       f"{also.format(_cpu(sidecars.get('cpu', 0)))}; {cap}")
    if not fits["memory"]:
        mib = room.memory_mebibytes - int(sidecars.get("memory", 0))
        cap = (f"at most {mib // 1024}Gi" if mib >= 1024 else
               f"at most {mib}Mi" if mib > 0 else "no Ray pod fits; use a larger instance type")
        return "memory", (f"{asked['memory']} does not fit {where}: {_gib(room.memory_mebibytes)} is "
                          f"{left.format(', the kernel, the eviction threshold')}"
                          f"{also.format(_gib(sidecars.get('memory', 0)))}; {cap}")
    return None
