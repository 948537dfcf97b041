"""The nodes of the synthesized node groups: labels, taints and allocatable, one node per (group, instance type).

Managed node groups (the infra stack's aws_eks_node_group): labels and reservations follow
tests/reference/nodes/eks-al2023.yaml (kubelet, EKS managed node groups and nodeadm, read upstream). Karpenter
NodePools (the ray-cluster stack's NodePool manifests, cluster.autoscaler: karpenter): one node per instance type
and capacity type the pool allows, labelled from the pool's template plus what Karpenter sets
(tests/reference/nodes/karpenter-al2023.yaml), tainted as its template says, with the same reservations but the
ENI-limited pod count. Instance sizes come from the instance catalogue through ``instance_type_facts``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import yaml

from config import instances
from conventions.kubernetes import TAINT_EFFECTS

from .scheduling import CPU, MEMORY, PODS, NotModelled, Resources

ROOT = Path(__file__).resolve().parents[2]
NODE_FACTS = ROOT / "tests" / "reference" / "nodes" / "eks-al2023.yaml"
KARPENTER_NODE_FACTS = ROOT / "tests" / "reference" / "nodes" / "karpenter-al2023.yaml"
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


@cache
def karpenter_node_facts() -> dict:
    return yaml.safe_load(KARPENTER_NODE_FACTS.read_text())


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
    group: str  # the managed node group's or the NodePool's name (the config's node group)
    instance_type: InstanceTypeFacts
    labels: dict[str, str]
    taints: list[dict]  # Kubernetes spelling: {key, value, effect: NoSchedule|NoExecute|PreferNoSchedule}
    allocatable: Resources  # without extended resources (see ``allocatable``)
    capacity_type: str | None = None  # a Karpenter node's offering (on-demand, spot); None: a managed group's

    @property
    def name(self) -> str:
        suffix = f"/{self.capacity_type}" if self.capacity_type else ""
        return f"{self.group}/{self.instance_type.name}{suffix}"

    @property
    def karpenter(self) -> bool:
        return self.capacity_type is not None

    @property
    def gpus(self) -> int:
        return self.instance_type.nvidia_gpus


def _version_at_least(version: str, minimum: str) -> bool:
    return tuple(int(p) for p in version.split(".")[:2]) >= tuple(int(p) for p in minimum.split(".")[:2])


def _kubelet_labels(it: InstanceTypeFacts, kubernetes_version: str) -> dict[str, str]:
    """What kubelet (and nodeadm, for an NVIDIA device on 1.35+) labels an AL2023 node with."""
    f = node_facts()["labels"]
    labels = dict(f["kubelet"]["set"])
    labels[f["kubelet"]["arch"]] = it.arch
    labels.update({k: it.name for k in f["kubelet"]["instance_type"]})
    gpu_label = f["nodeadm_gpu_present"]
    if it.nvidia_gpus and _version_at_least(kubernetes_version, gpu_label["min_kubelet"]):
        labels[gpu_label["label"]] = gpu_label["value"]
    return labels


def node_labels(group: str, body: dict, it: InstanceTypeFacts, kubernetes_version: str) -> dict[str, str]:
    f = node_facts()["labels"]
    arch = node_facts()["architectures"][body["ami_type"]]
    if arch != it.arch:
        raise NotModelled(f"node group {group}: {it.name} is {it.arch}, its AMI {body['ami_type']} is {arch}")
    labels = _kubelet_labels(it, kubernetes_version)
    mng = f["managed_node_group"]
    labels[mng["nodegroup"]] = group
    labels[mng["capacity_type"]] = body.get("capacity_type", "ON_DEMAND")
    # The group's own labels last: EKS applies them as given.
    labels.update({k: str(v) for k, v in (body.get("labels") or {}).items()})
    return labels


def cluster_version(infra: dict, kubernetes_version: str | None = None) -> str:
    clusters = list((infra.get("resource", {}).get("aws_eks_cluster") or {}).values())
    version = kubernetes_version or (clusters[0]["version"] if clusters else None)
    if not version:
        raise NotModelled("the infra stack has no aws_eks_cluster with a literal version")
    return version


def nodes_of_infra(infra: dict, kubernetes_version: str | None = None) -> list[Node]:
    """One node per instance type of each aws_eks_node_group of the infra stack's JSON."""
    version = cluster_version(infra, kubernetes_version)
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


# ------------------------------------------------------------------------------------------ Karpenter NodePools
# NodePool requirement keys the model evaluates; any other narrows the nodes in a way it does not know.
POOL_REQUIREMENT_KEYS = ("node.kubernetes.io/instance-type", "karpenter.sh/capacity-type", "kubernetes.io/os")


def karpenter_objects(ray_cluster_stack: dict, kind: str) -> dict[str, dict]:
    """The NodePool or EC2NodeClass manifests of the ray-cluster stack, by object name."""
    out = {}
    for m in (ray_cluster_stack.get("resource", {}).get("kubernetes_manifest") or {}).values():
        obj = m["manifest"]
        if obj.get("kind") == kind:
            out[obj["metadata"]["name"]] = obj
    return out


def _requirement(pool: str, requirements: list[dict], key: str) -> list[str] | None:
    hits = [r for r in requirements if r["key"] == key]
    if not hits:
        return None
    if len(hits) > 1 or hits[0]["operator"] != "In":
        raise NotModelled(f"NodePool {pool}: requirement {key} other than one In")
    return [str(v) for v in hits[0]["values"]]


def pool_node_labels(pool: str, node_class: str, template_labels: dict, it: InstanceTypeFacts, capacity_type: str,
                     kubernetes_version: str) -> dict[str, str]:
    """A Karpenter node's labels: kubelet's, Karpenter's own (pool, capacity type, node class, instance facts) and
    the pool template's."""
    f = karpenter_node_facts()["labels"]
    t = instances.lookup(it.name)
    assert t is not None
    family, size = it.name.split(".", 1)
    labels = _kubelet_labels(it, kubernetes_version)
    labels.update({f["nodepool"]: pool, f["capacity_type"]: capacity_type, f["node_class"]: node_class,
                   **f["lifecycle"]})
    i = f["instance"]
    category, generation = re.match(r"^([a-z]+)(\d+)", family).groups()  # type: ignore[union-attr]
    labels.update({i["family"]: family, i["size"]: size, i["category"]: category, i["generation"]: generation,
                   i["cpu"]: str(it.vcpu), i["memory"]: str(it.memory_mib)})
    if it.nvidia_gpus:
        g = f["gpu"]
        labels.update({g["count"]: str(it.nvidia_gpus), g["name"]: (t.gpu_model or "").lower(),
                       g["manufacturer"]["key"]: g["manufacturer"]["value"]})
    labels.update({k: str(v) for k, v in template_labels.items()})
    return labels


def nodes_of_pools(ray_cluster_stack: dict, kubernetes_version: str) -> list[Node]:
    """One node per (NodePool, allowed instance type, allowed capacity type) of the ray-cluster stack."""
    classes = karpenter_objects(ray_cluster_stack, "EC2NodeClass")
    family = karpenter_node_facts()["ami_alias_family"]
    nodes = []
    for pool, obj in karpenter_objects(ray_cluster_stack, "NodePool").items():
        template = obj["spec"]["template"]
        spec = template["spec"]
        ref = spec["nodeClassRef"]["name"]
        node_class = classes.get(ref)
        if node_class is None:
            raise NotModelled(f"NodePool {pool}: its EC2NodeClass {ref} is not in the stack")
        aliases = [t.get("alias", "") for t in node_class["spec"]["amiSelectorTerms"]]
        if not aliases or not all(a.startswith(f"{family}@") for a in aliases):
            raise NotModelled(f"EC2NodeClass {ref}: AMI {aliases} (modelled: the {family}@ alias)")
        requirements = spec.get("requirements") or []
        unknown = sorted({r["key"] for r in requirements} - set(POOL_REQUIREMENT_KEYS))
        if unknown:
            raise NotModelled(f"NodePool {pool}: requirements on {', '.join(unknown)}")
        types = _requirement(pool, requirements, "node.kubernetes.io/instance-type")
        if types is None:
            raise NotModelled(f"NodePool {pool}: no instance-type requirement (the model enumerates its types)")
        if _requirement(pool, requirements, "kubernetes.io/os") not in (None, ["linux"]):
            raise NotModelled(f"NodePool {pool}: an OS other than linux")
        # No capacity-type requirement: Karpenter launches On-Demand.
        capacity = _requirement(pool, requirements, "karpenter.sh/capacity-type") or ["on-demand"]
        taints = [{"key": t["key"], "value": t.get("value", ""), "effect": t["effect"]}
                  for t in spec.get("taints") or []]
        labels = (template.get("metadata") or {}).get("labels") or {}
        for name in types:
            it = instance_type_facts(name)
            # AL2023 on Karpenter: maxPods is the ENI limit (karpenter-al2023.yaml max_pods), not the managed cap.
            it = replace(it, max_pods=it.max_pods_eni)
            for ct in capacity:
                nodes.append(Node(group=pool, instance_type=it, capacity_type=ct, taints=taints,
                                  labels=pool_node_labels(pool, ref, labels, it, ct, kubernetes_version),
                                  allocatable=allocatable(it)))
    return nodes


def nodes_of_synth(synth: dict, kubernetes_version: str | None = None) -> list[Node]:
    """Every node the deployment can have: its managed node groups' and its Karpenter NodePools'."""
    version = cluster_version(synth["infra"], kubernetes_version)
    return nodes_of_infra(synth["infra"], version) + nodes_of_pools(synth.get("ray-cluster") or {}, version)
