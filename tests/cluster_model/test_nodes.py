"""Nodes of the model: reservations per nodeadm, labels per kubelet/EKS/nodeadm, read from the synthesized groups."""

from __future__ import annotations

import copy

import pytest

from config import capacity, instances
from config.versions import SUPPORTED_KUBERNETES_VERSIONS
from conventions.kubernetes import ACCELERATOR_LABEL, GPU_PRESENT_LABEL

from .nodes import (
    instance_type_facts,
    kube_reserved_cpu_m,
    kube_reserved_memory_mib,
    memory_capacity_mib,
    nodes_of_infra,
)
from .scheduling import NotModelled


@pytest.mark.parametrize("vcpu,reserved", [(1, 60), (2, 70), (4, 80), (8, 90), (96, 310), (192, 550)])
def test_kube_reserved_cpu_tiers(vcpu, reserved):
    """6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% of the rest (nodeadm)."""
    assert kube_reserved_cpu_m(vcpu) == reserved


def test_reservations_agree_with_the_config_validation_for_every_type():
    """Two implementations of nodeadm's reservations and the kernel's memory share: this model (from the recorded
    facts) and config/capacity.py (what synth-time validation uses). They must agree on every catalogued type."""
    for name, t in instances.catalogue().items():
        it = instance_type_facts(name)
        assert kube_reserved_cpu_m(it.vcpu) == capacity.kube_reserved_cpu_millicores(t.vcpu), name
        assert kube_reserved_memory_mib(it.max_pods_eni) == capacity.kube_reserved_memory_mebibytes(t.max_pods), name
        assert memory_capacity_mib(it) == capacity.memory_capacity_mebibytes(t), name


def _group(infra: dict, name: str) -> dict:
    return infra["resource"]["aws_eks_node_group"][name]


def test_nodes_of_the_default_synth(shapes):
    nodes = {n.name: n for n in nodes_of_infra(shapes("default").synth["infra"])}
    assert set(nodes) == {"core/m6i.2xlarge", "gpu/g5.xlarge"}
    core, gpu = nodes["core/m6i.2xlarge"], nodes["gpu/g5.xlarge"]
    assert core.labels["usage"] == "core" and core.taints == []
    assert gpu.taints == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    for n in (core, gpu):
        assert n.labels["kubernetes.io/os"] == "linux" and n.labels["kubernetes.io/arch"] == "amd64"
        assert n.labels["node.kubernetes.io/instance-type"] == n.instance_type.name
    assert gpu.gpus == 1 and core.gpus == 0


@pytest.mark.parametrize("version,present", [("1.33", False), ("1.34", False), ("1.35", True), ("1.36", True)])
def test_nodeadm_labels_gpu_nodes_from_kubelet_1_35(shapes, version, present):
    """nodeadm's own label, seen on a GPU group that does not set it itself."""
    infra = copy.deepcopy(shapes("default").synth["infra"])
    del _group(infra, "gpu")["labels"][GPU_PRESENT_LABEL]
    nodes = {n.group: n for n in nodes_of_infra(infra, version)}
    assert (GPU_PRESENT_LABEL in nodes["gpu"].labels) is present
    assert GPU_PRESENT_LABEL not in nodes["core"].labels


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES_VERSIONS)
def test_our_gpu_groups_carry_the_gpu_labels_on_every_supported_version(shapes, version):
    nodes = {n.group: n for n in nodes_of_infra(shapes("default").synth["infra"], version)}
    assert nodes["gpu"].labels[GPU_PRESENT_LABEL] == "true"
    assert nodes["gpu"].labels[ACCELERATOR_LABEL] == "nvidia-a10g"
    assert GPU_PRESENT_LABEL not in nodes["core"].labels and ACCELERATOR_LABEL not in nodes["core"].labels


def test_group_labels_and_taints_come_from_the_synth(shapes):
    infra = copy.deepcopy(shapes("default").synth["infra"])
    _group(infra, "gpu")["labels"]["k8s.amazonaws.com/accelerator"] = "nvidia-a10g"
    _group(infra, "gpu")["taint"].append({"key": "dedicated", "value": "ray", "effect": "NO_EXECUTE"})
    gpu = next(n for n in nodes_of_infra(infra) if n.group == "gpu")
    assert gpu.labels["k8s.amazonaws.com/accelerator"] == "nvidia-a10g"
    assert {"key": "dedicated", "value": "ray", "effect": "NoExecute"} in gpu.taints


def test_one_node_per_instance_type(shapes):
    """A group of several (same-shaped) instance types is one node per type; prod's GPU group is one size."""
    infra = copy.deepcopy(shapes("prod").synth["infra"])
    assert sorted(n.name for n in nodes_of_infra(infra)) == ["core/m6i.2xlarge", "gpu/g5.2xlarge"]
    _group(infra, "core")["instance_types"] = ["m6i.2xlarge", "m7i.2xlarge"]
    assert sorted(n.name for n in nodes_of_infra(infra)) == ["core/m6i.2xlarge", "core/m7i.2xlarge", "gpu/g5.2xlarge"]


@pytest.mark.parametrize("change,match", [
    ({"ami_type": "BOTTLEROCKET_x86_64_NVIDIA"}, "BOTTLEROCKET"),  # other labels, its own device plugin
    ({"ami_type": "AL2023_ARM_64_STANDARD"}, "amd64, its AMI"),  # x86 types on an arm64 AMI
])
def test_unmodelled_node_groups_are_refused(shapes, change, match):
    infra = copy.deepcopy(shapes("default").synth["infra"])
    _group(infra, "core").update(change)
    with pytest.raises(NotModelled, match=match):
        nodes_of_infra(infra)
