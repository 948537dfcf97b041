"""The nodes of the synthesized node groups: labels, taints and allocatable, one node per (group, instance type).

Labels and reservations follow tests/reference/nodes/eks-al2023.yaml (kubelet, EKS managed node groups and
nodeadm, read upstream); instance sizes come from the instance catalogue through ``instance_type_facts``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from config import instances
from conventions.kubernetes import TAINT_EFFECTS

from .scheduling import CPU, MEMORY, PODS, NotModelled, Resources

ROOT = Path(__file__).resolve().parents[2]
NODE_FACTS = ROOT / "tests" / "reference" / "nodes" / "eks-al2023.yaml"
GPU_RESOURCE = "nvidia.com/gpu"
MIB = 2 ** 20

@dataclass(frozen=True)
class InstanceTypeFacts:
    name: str
    vcpu: int
    memory_mib: int  # nominal (DescribeInstanceTypes MemoryInfo.SizeInMiB)
    nvidia_gpus: int
    max_pods_eni: int  # nodeadm's ENI-based max pods: sizes kube-reserved memory
    max_pods: int  # the managed node group's maxPods (ENI value capped at 110/250)
    arch: str  # amd64 | arm64


def instance_type_facts(name: str) -> InstanceTypeFacts:
    """THE adapter to the instance catalogue (config/instances.py, its one owner)."""
    t = instances.lookup(name)
    if t is None:
        raise KeyError(f"instance type {name} is not in the instance catalogue")
    caps = node_facts()["managed_node_group_max_pods"]
    cap = caps["below_30_vcpu"] if t.vcpu < 30 else caps["from_30_vcpu"]
    return InstanceTypeFacts(name=name, vcpu=t.vcpu, memory_mib=t.memory_mib, nvidia_gpus=t.nvidia_gpus,
                             max_pods_eni=t.max_pods, max_pods=min(t.max_pods, cap),
                             arch={"x86_64": "amd64", "arm64": "arm64"}[t.architecture])


@cache
def node_facts() -> dict:
    return yaml.safe_load(NODE_FACTS.read_text())


def kube_reserved_cpu_m(vcpu: int) -> int:
    total = vcpu * 1000
    reserved = 0
    for r in node_facts()["reservations"]["kube_reserved_cpu_ranges"]:
        start, end = r["from_m"], r["to_m"] if r["to_m"] is not None else total
        if total > start:
            reserved += (min(total, end) - start) * r["per_10000"] // 10000
    return reserved


def kube_reserved_memory_mib(max_pods_eni: int) -> int:
    m = node_facts()["reservations"]["kube_reserved_memory_mib"]
    return m["per_pod"] * max_pods_eni + m["base"]


def memory_capacity_mib(it: InstanceTypeFacts) -> int:
    o = node_facts()["reservations"]["vm_memory_overhead"]
    mib = it.memory_mib - (o["arm64_cma_mib"] if it.arch == "arm64" else 0)
    return mib - math.ceil(mib * o["percent"])


def allocatable(it: InstanceTypeFacts) -> Resources:
    """Node allocatable = capacity - kube-reserved - eviction threshold (no system-reserved on AL2023).
    GPUs are not here: a node offers nvidia.com/gpu only once a device plugin runs on it (the model adds them)."""
    r = node_facts()["reservations"]
    memory = memory_capacity_mib(it) - kube_reserved_memory_mib(it.max_pods_eni) - r["eviction_hard_memory_mib"]
    return Resources({CPU: it.vcpu * 1000 - kube_reserved_cpu_m(it.vcpu), MEMORY: memory * MIB, PODS: it.max_pods})


@dataclass(frozen=True)
class Node:
    group: str
    instance_type: InstanceTypeFacts
    labels: dict[str, str]
    taints: list[dict]  # Kubernetes spelling: {key, value, effect: NoSchedule|NoExecute|PreferNoSchedule}
    allocatable: Resources  # without extended resources (see ``allocatable``)

    @property
    def name(self) -> str:
        return f"{self.group}/{self.instance_type.name}"

    @property
    def gpus(self) -> int:
        return self.instance_type.nvidia_gpus


def _version_at_least(version: str, minimum: str) -> bool:
    return tuple(int(p) for p in version.split(".")[:2]) >= tuple(int(p) for p in minimum.split(".")[:2])


def node_labels(group: str, body: dict, it: InstanceTypeFacts, kubernetes_version: str) -> dict[str, str]:
    f = node_facts()["labels"]
    arch = node_facts()["architectures"][body["ami_type"]]
    if arch != it.arch:
        raise NotModelled(f"node group {group}: {it.name} is {it.arch}, its AMI {body['ami_type']} is {arch}")
    labels = dict(f["kubelet"]["set"])
    labels[f["kubelet"]["arch"]] = arch
    labels.update({k: it.name for k in f["kubelet"]["instance_type"]})
    mng = f["managed_node_group"]
    labels[mng["nodegroup"]] = group
    labels[mng["capacity_type"]] = body.get("capacity_type", "ON_DEMAND")
    gpu_label = f["nodeadm_gpu_present"]
    if it.nvidia_gpus and _version_at_least(kubernetes_version, gpu_label["min_kubelet"]):
        labels[gpu_label["label"]] = gpu_label["value"]
    # The group's own labels last: EKS applies them as given.
    labels.update({k: str(v) for k, v in (body.get("labels") or {}).items()})
    return labels


def nodes_of_infra(infra: dict, kubernetes_version: str | None = None) -> list[Node]:
    """One node per instance type of each aws_eks_node_group of the infra stack's JSON."""
    clusters = list((infra.get("resource", {}).get("aws_eks_cluster") or {}).values())
    version = kubernetes_version or (clusters[0]["version"] if clusters else None)
    if not version:
        raise NotModelled("the infra stack has no aws_eks_cluster with a literal version")
    supported = node_facts()["ami_types"]
    nodes = []
    for group, body in (infra.get("resource", {}).get("aws_eks_node_group") or {}).items():
        if body.get("ami_type") not in supported:
            raise NotModelled(f"node group {group}: AMI type {body.get('ami_type')} (modelled: {', '.join(supported)})")
        taints = [{"key": t["key"], "value": t.get("value", ""), "effect": TAINT_EFFECTS[t["effect"]]}
                  for t in body.get("taint") or []]
        for name in body["instance_types"]:
            it = instance_type_facts(name)
            nodes.append(Node(group=group, instance_type=it, labels=node_labels(group, body, it, version),
                              taints=taints, allocatable=allocatable(it)))
    return nodes
