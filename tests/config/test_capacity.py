"""Node-fit validation (config/capacity.py, config/instances.py): the catalogue, the kubelet reservations, the
DaemonSet table, and that the pods the config accepts are the pods the RayCluster really asks the scheduler for."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from config import AppConfig, ConfigError, parse_config
from config.capacity import (
    DAEMONSETS,
    daemonsets_on,
    kube_reserved_cpu_millicores,
    kube_reserved_memory_mebibytes,
    memory_capacity_mebibytes,
    pod_room,
    ray_head_pod_requests,
    ray_worker_pod_requests,
)
from config.instances import catalogue, families, gpu_families, lookup
from constructs_lib.manifests.ray_cluster import RayClusterProps, WorkerGroupProps, ray_cluster
from conventions.kubernetes import KUBERAY_WORKER_INIT_REQUESTS, pod_requests

CORE = {"name": "core", "role": "core", "instance_types": ["m6i.2xlarge"]}
GPU = {"name": "gpu", "role": "gpu", "ami_type": "AL2023_x86_64_NVIDIA", "min_size": 0, "desired_size": 0,
       "max_size": 4}
# cluster-autoscaler's AWS provider knows these accelerator values (aws_cloud_provider.go availableGPUTypes); the
# others follow its post-Tesla pattern.
CA_ACCELERATORS = {"nvidia-tesla-k80", "nvidia-tesla-p100", "nvidia-tesla-v100", "nvidia-tesla-t4",
                   "nvidia-tesla-a100", "nvidia-a10g", "nvidia-l4", "nvidia-l40s"}


# ------------------------------------------------------------------------------------------- catalogue
def test_catalogue_covers_every_family_with_sane_numbers():
    types = catalogue()
    assert len(types) > 250 and {t.family for t in types.values()} == set(families())
    for t in types.values():
        assert t.vcpu > 0 and t.memory_mib >= 512 and t.max_pods >= 4, t
        assert t.architecture in ("x86_64", "arm64"), t
        assert bool(t.nvidia_gpus) == (t.family in gpu_families()), t
        if t.nvidia_gpus:
            assert t.gpu_model and t.accelerator_label, t
            assert t.accelerator_label in CA_ACCELERATORS or t.accelerator_label == f"nvidia-{t.gpu_model.lower()}", t


@pytest.mark.parametrize("name, vcpu, gib, gpus, model, label", [
    ("g5.xlarge", 4, 16, 1, "A10G", "nvidia-a10g"),
    ("g5.12xlarge", 48, 192, 4, "A10G", "nvidia-a10g"),
    ("g4dn.xlarge", 4, 16, 1, "T4", "nvidia-tesla-t4"),
    ("g6e.xlarge", 4, 32, 1, "L40S", "nvidia-l40s"),
    ("p4d.24xlarge", 96, 1152, 8, "A100", "nvidia-tesla-a100"),
    ("m6i.2xlarge", 8, 32, 0, None, None),
    ("m7g.large", 2, 8, 0, None, None),
])
def test_catalogue_entries_match_aws(name, vcpu, gib, gpus, model, label):
    t = lookup(name)
    assert (t.vcpu, t.memory_gib, t.nvidia_gpus, t.gpu_model, t.accelerator_label) == (vcpu, gib, gpus, model, label)


# ------------------------------------------------------------------------------------------- reservations
@pytest.mark.parametrize("vcpu, millicores", [(1, 60), (2, 70), (4, 80), (8, 90), (96, 310), (192, 550)])
def test_kube_reserved_cpu_is_nodeadms(vcpu, millicores):
    assert kube_reserved_cpu_millicores(vcpu) == millicores


def test_kube_reserved_memory_and_capacity():
    assert kube_reserved_memory_mebibytes(58) == 893 and kube_reserved_memory_mebibytes(737) == 8362
    assert memory_capacity_mebibytes(lookup("m6i.2xlarge")) == 32768 - 2458  # 7.5%, rounded up
    assert memory_capacity_mebibytes(lookup("m7g.large")) == 8128 - 610  # Graviton: 64 MiB of CMA first


# What one pod can request on an empty node, by config (these numbers are in the report and the README).
@pytest.mark.parametrize("name, role, insights, cpu, mib", [
    ("g5.xlarge", "gpu", False, 3740, 14058),
    ("g5.2xlarge", "gpu", False, 7730, 29213),
    ("m6i.2xlarge", "core", False, 7730, 29213),
    ("g5.2xlarge", "gpu", True, 7180, 28932),  # + cloudwatch-agent, fluent-bit, dcgm-exporter
    ("m6i.2xlarge", "core", True, 7430, 29060),  # dcgm-exporter only on GPU nodes
])
def test_pod_room(name, role, insights, cpu, mib):
    room = pod_room(lookup(name), role, kube_prometheus_stack=True, container_insights=insights)
    assert (room.cpu_millicores, room.memory_mebibytes) == (cpu, mib)


def test_daemonset_table_counts_init_containers_like_the_scheduler():
    aws_node = next(d for d in DAEMONSETS if d.name == "aws-node")
    assert aws_node.requests["cpu"] == 50  # max(init 25m, 25m + 25m)
    names = {d.name for d in daemonsets_on("core", kube_prometheus_stack=False, container_insights=False)}
    assert "nvidia-device-plugin" not in names and "aws-node" in names and "fluent-bit" not in names
    gpu = {d.name for d in daemonsets_on("gpu", kube_prometheus_stack=True, container_insights=True)}
    assert {"nvidia-device-plugin", "dcgm-exporter", "kube-prometheus-stack-prometheus-node-exporter"} <= gpu
    assert all(d.source for d in DAEMONSETS) and len({d.name for d in DAEMONSETS}) == len(DAEMONSETS)


def test_pod_requests_take_the_larger_of_init_and_app_containers():
    r = pod_requests([{"cpu": "100m", "memory": "64Mi"}, {"cpu": "50m"}], [{"cpu": "200m", "memory": "32Mi"}])
    assert r == {"cpu": Decimal(200), "memory": Decimal(64)}
    # A tiny worker is sized by KubeRay's wait-gcs-ready init container, not by itself.
    tiny = ray_worker_pod_requests("100m", "128Mi", 0)
    assert tiny["cpu"] == 200 and tiny["memory"] == 256
    assert KUBERAY_WORKER_INIT_REQUESTS == {"cpu": "200m", "memory": "256Mi"}


# ------------------------------------------------------------------------------------------- the pods themselves
def _effective(pod: dict, injected_init: tuple[dict, ...] = (), injected: tuple[dict, ...] = ()) -> dict:
    spec = pod["spec"]
    containers = [c["resources"]["requests"] for c in spec["containers"]] + list(injected)
    inits = [c["resources"]["requests"] for c in spec.get("initContainers", [])] + list(injected_init)
    return pod_requests(containers, inits)


def test_validation_counts_what_the_ray_cluster_asks_for():
    """The requests the validator assumes equal those of the RayCluster's own pod templates plus what KubeRay
    v1.7.0 adds: the autoscaler sidecar on the head (spec.autoscalerOptions.resources), the wait-gcs-ready init
    container on workers."""
    rc = ray_cluster(RayClusterProps(
        name="kuberay", namespace="ray", ray_version="2.58.0", image="img", head_service_account="ray-head",
        worker_service_account="ray-worker", pvc_name="fsx",
        head_cpu="2", head_memory="8Gi", idle_timeout_seconds=60, worker_drain_seconds=60,
        upgrade_strategy="Recreate",
        worker_groups=[WorkerGroupProps("g", "gpu", 0, 2, "3", "12Gi", 1),
                       WorkerGroupProps("c", "cpu", 0, 2, "150m", "200Mi", 0)]))
    spec = rc["spec"]
    sidecar = spec["autoscalerOptions"]["resources"]["requests"]
    assert _effective(spec["headGroupSpec"]["template"], injected=(sidecar,)) == ray_head_pod_requests("2", "8Gi")
    gpu, cpu = spec["workerGroupSpecs"]
    assert _effective(gpu["template"], (KUBERAY_WORKER_INIT_REQUESTS,)) == ray_worker_pod_requests("3", "12Gi", 1)
    assert _effective(cpu["template"], (KUBERAY_WORKER_INIT_REQUESTS,)) == ray_worker_pod_requests("150m", "200Mi", 0)


# ------------------------------------------------------------------------------------------- validation
def _config(worker: dict | None = None, head: dict | None = None, gpu_types=("g5.2xlarge",), **extra) -> dict:
    ray: dict = {"worker_groups": [{"name": "w", "node_group": "gpu", **(worker or {})}]}
    if head:
        ray["head"] = head
    return {"cluster": {"node_groups": [CORE, {**GPU, "instance_types": list(gpu_types)}]}, "ray": ray, **extra}


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    return str(e.value)


@pytest.mark.parametrize("field, worker, head, types", [
    ("memory", {"memory": "30Gi"}, None, ("g5.2xlarge",)),
    ("memory", {"memory": "15Gi", "cpu": "2"}, None, ("g5.xlarge",)),
    ("cpu", {"cpu": "8", "memory": "8Gi"}, None, ("g5.2xlarge",)),
    ("cpu", {"cpu": "3900m", "memory": "8Gi"}, None, ("g5.xlarge",)),
    ("memory", None, {"memory": "29Gi"}, ("g5.xlarge",)),
    ("cpu", None, {"cpu": "7500m"}, ("g5.xlarge",)),
])
def test_what_would_fit_is_accepted_and_a_bit_more_is_not(field, worker, head, types):
    """The error names the field and an "at most" value; that value is accepted, and the next step above is not."""
    where = "head" if head else "worker_groups[0]"
    message = _error(_config(worker, head, types))
    assert f"ray.{where}.{field}: " in message and "does not fit one" in message, message
    most = re.search(r"at most (\S+)$", message).group(1)
    fixed = {**(head or worker), field: most}
    cfg = parse_config(_config(fixed if worker else worker, fixed if head else None, types))
    assert isinstance(cfg, AppConfig)
    step = {"memory": lambda q: f"{int(q[:-2]) + 1}{q[-2:]}",
            "cpu": lambda q: f"{int(q[:-1]) + 1}m" if q.endswith("m") else f"{int(q) * 1000 + 1}m"}[field](most)
    over = {**fixed, field: step}
    assert f"ray.{where}.{field}: " in _error(_config(over if worker else worker, over if head else None, types))


def test_daemonsets_of_optional_addons_count():
    """3.5 CPUs fit a g5.xlarge, until Container Insights puts its agents (550m on GPU nodes) there too."""
    worker = {"cpu": "3500m", "memory": "8Gi"}
    parse_config(_config(worker, gpu_types=("g5.xlarge",)))
    message = _error(_config(worker, gpu_types=("g5.xlarge",), observability={"container_insights": True}))
    assert "ray.worker_groups[0].cpu: 3500m does not fit one g5.xlarge node" in message and "at most 3190m" in message


def test_every_instance_type_of_a_group_is_checked():
    """Same shape, different ENI limits: t3.large reserves 66 MiB more for the kubelet (35 pods, not 29)."""
    data = {"cluster": {"node_groups": [{**CORE, "instance_types": ["m6i.large", "t3.large"]}]},
            "ray": {"worker_groups": [], "head": {"cpu": "1", "memory": "6250Mi"}}}
    assert "ray.head.memory: 6250Mi does not fit one t3.large node" in _error(data)
    data["cluster"]["node_groups"][0]["instance_types"] = ["m6i.large"]
    parse_config(data)



def test_the_dcgm_exporter_counts_in_how_many_workers_a_karpenter_pool_holds():
    """Four 11900m one-GPU workers fill a g5.12xlarge (47810m allocatable, 180m of DaemonSets): with the DCGM
    exporter's 100m on every GPU node only three do, so a pool of one such node cannot hold max_replicas 4."""
    data = {"cluster": {"autoscaler": "karpenter", "node_groups": [
                CORE, {"name": "gpu", "role": "gpu", "instance_types": ["g5.12xlarge"], "max_size": 1}]},
            "ray": {"worker_groups": [{"name": "w", "node_group": "gpu", "max_replicas": 4, "cpu": "11900m",
                                       "memory": "40Gi", "gpus": 1}]}}
    parse_config(data)
    message = _error({**data, "observability": {"dcgm_exporter": True}})
    assert message == ("config: ray.worker_groups[0].max_replicas: 4 workers never fit node group 'gpu' at its "
                       "max_size 1: one g5.12xlarge node holds 3, so 3 run and the rest stay Pending; lower "
                       "max_replicas to 3 or raise cluster.node_groups[1].max_size to 2"), message


def test_the_dcgm_exporter_counts_in_the_pod_fit_of_a_karpenter_pool():
    data = {"cluster": {"autoscaler": "karpenter", "node_groups": [
                CORE, {"name": "gpu", "role": "gpu", "instance_types": ["g5.2xlarge", "g5.4xlarge"], "max_size": 2}]},
            "ray": {"worker_groups": [{"name": "w", "node_group": "gpu", "max_replicas": 2, "cpu": "7700m",
                                       "memory": "20Gi", "gpus": 1}]}}
    parse_config(data)  # 7730m room on a g5.2xlarge
    message = _error({**data, "observability": {"dcgm_exporter": True}})
    assert "ray.worker_groups[0].cpu: 7700m does not fit one g5.2xlarge node of node group 'gpu'" in message
    assert message.endswith("at most 7630m"), message
