"""Karpenter's NodePools in the cluster model (cluster.autoscaler: karpenter): the nodes a pool can create, each Ray
worker pod matching exactly one pool that can provide its resources, every DaemonSet (the NVIDIA device plugin, the
FSx node plugin, the VPC CNI...) on Karpenter's nodes too, and mutations showing each check fails when its fact goes.
Two node groups of one role (multi-group, karpenter-multi) prove that workers follow their node group, not the role.
"""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from config.instances import lookup
from tests.helpers import REFERENCE, ROOT, stack_items

from .intended import INTENDED, placement_mismatch
from .model import ClusterModel
from .nodes import karpenter_objects
from .scheduling import CPU, MEMORY, PODS, pod_requests, untolerated_taints

KARPENTER_REFERENCE = REFERENCE.parent / "karpenter-v1.14.1"
DEVICE_PLUGIN = "helm/nvidia-device-plugin/device-plugin"


def _worker_keys(shape) -> dict[str, str]:
    """Worker workload key -> its node group."""
    return {f"RayCluster/{shape.cfg.ray.cluster_name}/worker/{w.name}": w.node_group
            for w in shape.cfg.ray.worker_groups}


def _pools(synth: dict) -> dict[str, dict]:
    return karpenter_objects(synth["ray-cluster"], "NodePool")


def _mismatches(shape, model, pattern: str) -> list[str]:
    where, _ = INTENDED[pattern]
    keys = [k for k in model.workloads if fnmatch.fnmatchcase(k, pattern)]
    assert keys, pattern
    return [m for k in keys if (m := placement_mismatch(model, shape.roles, shape.cfg, k, where))]


# ------------------------------------------------------------------------------------- Karpenter's own matching
def pool_accepts(pool: dict, spec: dict) -> str | None:
    """Why Karpenter would not launch a node from ``pool`` for a pod with this spec (None: it would): the pod must
    tolerate the template's taints, and every label its nodeSelector asks for must be one the pool's nodes carry
    (the template's labels) or can be given (an In requirement naming the value). A label neither knows is one
    Karpenter cannot provide (sigs.k8s.io/karpenter scheduling: Requirements.Compatible)."""
    template = pool["spec"]["template"]
    labels = (template.get("metadata") or {}).get("labels") or {}
    requirements = {r["key"]: r.get("values", []) for r in template["spec"].get("requirements") or []}
    bad = untolerated_taints(spec.get("tolerations") or [], template["spec"].get("taints") or [])
    if bad:
        return f"does not tolerate {[t['key'] for t in bad]}"
    for key, value in (spec.get("nodeSelector") or {}).items():
        if key in labels:
            if labels[key] != str(value):
                return f"{key}={value}: the pool's nodes are labelled {labels[key]}"
        elif key in requirements:
            if str(value) not in requirements[key]:
                return f"{key}={value}: the pool allows {requirements[key]}"
        else:
            return f"{key}: the pool's nodes never carry it"
    return None


def matching_pools(model: ClusterModel, synth: dict, key: str) -> set[str]:
    """The pools Karpenter would launch a node from for this workload: they accept its pod, and one of their
    instance types (and purchase options) has room for it after the DaemonSets."""
    spec = model.workloads[key].spec
    fit = {model.nodes[n].group for n in model.nodes if model.nodes[n].karpenter
           and not model.placements[key].problems[n]}
    return {name for name, pool in _pools(synth).items() if pool_accepts(pool, spec) is None and name in fit}


@pytest.mark.parametrize("shape_name", ["karpenter", "karpenter-default", "karpenter-multi"])
def test_each_worker_pod_matches_exactly_its_own_pool(shapes, shape_name):
    shape = shapes(shape_name)
    for key, group in _worker_keys(shape).items():
        assert matching_pools(shape.model, shape.synth, key) == {group}, key
        # and a node of that pool, of every type and purchase option it allows, takes the pod
        nodes = {n for n, node in shape.model.nodes.items() if node.group == group}
        assert nodes and shape.model.placements[key].nodes == nodes, shape.model.placements[key].explain()


@pytest.mark.parametrize("shape_name", ["multi-group", "karpenter-multi"])
def test_two_groups_of_one_role_keep_their_workers_apart(shapes, shape_name):
    """Each worker would fit the other group of its role (resources and taints alike): only the node-group
    selector keeps it on its own."""
    shape = shapes(shape_name)
    roles = shape.roles
    for key, group in _worker_keys(shape).items():
        placement = shape.model.placements[key]
        assert placement.groups == {group}, placement.explain()
        sibling = next(g for g, r in roles.items() if r == roles[group] and g != group)
        reasons = {placement.problems[n] for n, node in shape.model.nodes.items() if node.group == sibling}
        assert reasons == {f"nodeSelector {{'ray-eks/node-group': '{group}'}} does not match the node's labels"}


def test_selecting_by_role_puts_workers_on_the_other_group_too(shapes):
    """The defect the node-group label fixes: with the role as selector, the a10g workers also land on the L4 group
    (and the general CPU workers on the memory group), and the intended-placement check reports it."""
    shape = shapes("multi-group")
    synth = shape.copy_synth()
    spec = synth["ray-cluster"]["resource"]["kubernetes_manifest"]["ray_cluster"]["manifest"]["spec"]
    for g in spec["workerGroupSpecs"]:
        role = shape.roles[g["template"]["spec"]["nodeSelector"]["ray-eks/node-group"]]
        g["template"]["spec"]["nodeSelector"] = {"usage": role}
    model = shape.build(synth)
    key = f"RayCluster/{shape.cfg.ray.cluster_name}/worker/a10g"
    assert model.placements[key].groups == {"gpu-a10g", "gpu-l4"}
    assert model.placements[f"RayCluster/{shape.cfg.ray.cluster_name}/worker/general"].groups == {
        "cpu-general", "cpu-memory"}
    assert _mismatches(shape, model, "RayCluster/*/worker/*")


# ------------------------------------------------------------------------------------- the nodes a pool creates
def test_a_pool_creates_a_node_per_type_and_purchase_option(shapes):
    """The example's GPU pool: three A10G sizes, Spot or On-Demand: six nodes, each labelled from the template (role,
    node group, GPU labels the device plugin and issue 19's DCGM exporter select), by Karpenter (pool, capacity type,
    instance facts) and by kubelet, tainted like a managed GPU group, allocatable from its own type."""
    shape = shapes("karpenter")
    nodes = {n: node for n, node in shape.model.nodes.items() if node.group == "gpu"}
    assert sorted(nodes) == sorted(f"gpu/{t}/{c}" for t in ("g5.2xlarge", "g5.4xlarge", "g5.8xlarge")
                                   for c in ("spot", "on-demand"))
    node = nodes["gpu/g5.4xlarge/spot"]
    assert node.karpenter and node.taints == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert {k: node.labels[k] for k in (
        "usage", "ray-eks/node-group", "nvidia.com/gpu.present", "k8s.amazonaws.com/accelerator",
        "karpenter.sh/nodepool", "karpenter.sh/capacity-type", "karpenter.k8s.aws/ec2nodeclass",
        "node.kubernetes.io/instance-type", "kubernetes.io/arch", "karpenter.k8s.aws/instance-family",
        "karpenter.k8s.aws/instance-gpu-name", "karpenter.k8s.aws/instance-gpu-count")} == {
        "usage": "gpu", "ray-eks/node-group": "gpu", "nvidia.com/gpu.present": "true",
        "k8s.amazonaws.com/accelerator": "nvidia-a10g", "karpenter.sh/nodepool": "gpu",
        "karpenter.sh/capacity-type": "spot", "karpenter.k8s.aws/ec2nodeclass": "gpu",
        "node.kubernetes.io/instance-type": "g5.4xlarge", "kubernetes.io/arch": "amd64",
        "karpenter.k8s.aws/instance-family": "g5", "karpenter.k8s.aws/instance-gpu-name": "a10g",
        "karpenter.k8s.aws/instance-gpu-count": "1"}
    assert "eks.amazonaws.com/nodegroup" not in node.labels  # not a managed node group's
    # AL2023 on Karpenter: maxPods is the ENI limit, not a managed node group's cap of 110.
    assert node.allocatable.get(PODS) == lookup("g5.4xlarge").max_pods > 110
    assert shape.model.offered["gpu/g5.4xlarge/spot"].get("nvidia.com/gpu") == 1


def test_the_core_group_stays_managed_and_only_pools_make_worker_nodes(shapes):
    shape = shapes("karpenter")
    infra = shape.synth["infra"]["resource"]
    assert list(infra["aws_eks_node_group"]) == ["core"]
    assert {n.group for n in shape.model.nodes.values() if n.karpenter} == {"gpu", "cpu"}
    assert not any(n.karpenter for n in shape.model.nodes.values() if n.group == "core")


@pytest.mark.parametrize("shape_name", ["karpenter", "karpenter-default", "karpenter-default-k8s-1.34",
                                        "karpenter-multi"])
def test_every_daemonset_lands_on_karpenters_nodes_too(shapes, shape_name):
    """The DaemonSets a managed group's nodes run, Karpenter's run too: every-node ones on every pool node, the GPU
    ones (the device plugin) on every GPU pool node, on 1.34 as on 1.35 (our template's nvidia.com/gpu.present)."""
    shape = shapes(shape_name)
    model = shape.model
    pool_nodes = {n for n, node in model.nodes.items() if node.karpenter}
    assert pool_nodes
    for key, placement in model.daemonsets.items():
        where, _ = next(v for p, v in INTENDED.items() if fnmatch.fnmatchcase(key, p))
        expected = where.nodes(model, shape.roles, shape.cfg, model.workloads[key]) & pool_nodes
        assert placement.nodes & pool_nodes == expected, placement.explain()
    gpu_nodes = {n for n in pool_nodes if model.nodes[n].gpus}
    if shape.cfg.cluster.has_gpu:
        assert gpu_nodes and gpu_nodes <= model.placements[DEVICE_PLUGIN].nodes
        assert all(model.offered[n].get("nvidia.com/gpu") == model.nodes[n].gpus for n in gpu_nodes)
    for plugin in ("addon/vpc-cni/aws-node", "addon/aws-fsx-csi-driver/fsx-csi-node", "addon/kube-proxy/kube-proxy"):
        assert pool_nodes <= model.placements[plugin].nodes, plugin


def test_the_controller_runs_on_core_and_never_on_its_own_nodes(shapes):
    shape = shapes("karpenter")
    placement = shape.model.placements["helm/karpenter/controller"]
    assert placement.groups == {"core"}
    assert "helm/cluster-autoscaler/cluster-autoscaler" not in shape.model.workloads


# ------------------------------------------------------------------------------------- mutations
def _pool(synth: dict, name: str) -> dict:
    return synth["ray-cluster"]["resource"]["kubernetes_manifest"][f"karpenter_node_pool_{name}"]["manifest"]


def test_without_its_node_group_label_a_pool_takes_no_worker(shapes):
    shape = shapes("karpenter-multi")
    synth = shape.copy_synth()
    del _pool(synth, "gpu_l4")["spec"]["template"]["metadata"]["labels"]["ray-eks/node-group"]
    model = shape.build(synth)
    key = f"RayCluster/{shape.cfg.ray.cluster_name}/worker/l4"
    assert matching_pools(model, synth, key) == set()
    assert model.placements[key].nodes == frozenset()
    assert pool_accepts(_pools(synth)["gpu-l4"], model.workloads[key].spec) == (
        "ray-eks/node-group: the pool's nodes never carry it")
    assert _mismatches(shape, model, "RayCluster/*/worker/*")


def test_a_pool_labelled_like_another_group_takes_its_workers_too(shapes):
    """Two pools with one node-group label: a worker matches both, which the exactly-one check catches."""
    shape = shapes("karpenter-multi")
    synth = shape.copy_synth()
    _pool(synth, "gpu_l4")["spec"]["template"]["metadata"]["labels"]["ray-eks/node-group"] = "gpu-a10g"
    model = shape.build(synth)
    assert matching_pools(model, synth, f"RayCluster/{shape.cfg.ray.cluster_name}/worker/a10g") == {
        "gpu-a10g", "gpu-l4"}
    assert _mismatches(shape, model, "RayCluster/*/worker/*")


def test_without_the_gpu_taint_on_the_pool_unselected_pods_spill_onto_gpu_nodes(shapes):
    """CoreDNS without our node selector: on the managed core group only while the GPU pool's nodes are tainted."""
    shape = shapes("karpenter-default")
    synth = shape.copy_synth()
    del synth["infra"]["resource"]["aws_eks_addon"]["coredns"]["configuration_values"]
    assert shape.build(synth).placements["addon/coredns/coredns"].groups == {"core"}
    del _pool(synth, "gpu")["spec"]["template"]["spec"]["taints"]
    model = shape.build(synth)
    assert model.placements["addon/coredns/coredns"].groups == {"core", "gpu"}
    assert _mismatches(shape, model, "addon/coredns/coredns")


def test_without_our_gpu_label_the_device_plugin_skips_karpenters_gpu_nodes_before_1_35(shapes):
    shape = shapes("karpenter-default-k8s-1.34")
    synth = shape.copy_synth()
    del _pool(synth, "gpu")["spec"]["template"]["metadata"]["labels"]["nvidia.com/gpu.present"]
    model = shape.build(synth)
    gpu_nodes = {n for n, node in model.nodes.items() if node.group == "gpu"}
    assert not model.placements[DEVICE_PLUGIN].nodes & gpu_nodes
    assert _mismatches(shape, model, DEVICE_PLUGIN)
    worker = model.placements[f"RayCluster/{shape.cfg.ray.cluster_name}/worker/gpu-group"]
    assert worker.nodes == frozenset() and "insufficient nvidia.com/gpu" in worker.problems["gpu/g5.xlarge/on-demand"]


def test_an_instance_type_too_small_for_the_workers_is_a_node_they_cannot_use(shapes):
    """Add a smaller type to the GPU pool's requirement: the model gives it a node, and the workers do not fit there
    (config validation refuses such a pool at synth: every type must hold a worker)."""
    shape = shapes("karpenter")
    synth = shape.copy_synth()
    requirement = _pool(synth, "gpu")["spec"]["template"]["spec"]["requirements"][0]
    assert requirement["key"] == "node.kubernetes.io/instance-type"
    requirement["values"].append("g5.xlarge")
    model = shape.build(synth)
    key = f"RayCluster/{shape.cfg.ray.cluster_name}/worker/gpu-group"
    assert model.placements[key].problems["gpu/g5.xlarge/spot"].startswith("insufficient")
    assert _mismatches(shape, model, "RayCluster/*/worker/*")


def test_without_its_chart_affinity_the_controller_could_run_on_its_own_nodes(shapes):
    """The chart's required affinity (no karpenter.sh/nodepool label) keeps the controller off the nodes it launches;
    with our core selector gone as well, it would go to the untainted CPU pool."""
    shape = shapes("karpenter")
    synth = shape.copy_synth()
    release = synth["ray"]["resource"]["helm_release"]["karpenter"]
    release["values"].append(json.dumps({"nodeSelector": {"usage": None}}))
    assert shape.build(synth).placements["helm/karpenter/controller"].groups == {"core"}
    release["values"].append(json.dumps({"affinity": {"nodeAffinity": None}}))
    model = shape.build(synth)
    assert model.placements["helm/karpenter/controller"].groups == {"core", "cpu"}
    assert _mismatches(shape, model, "helm/karpenter/controller")


# ------------------------------------------------------------------------------------- the recorded facts
def test_the_chart_facts_are_the_derived_chart_defaults():
    """tests/reference/charts/karpenter@1.14.1.yaml records the values its template reads as the release's
    values.yaml has them (tests/reference/karpenter-v1.14.1, derived by scripts/derive_reference.py)."""
    from .facts import chart_facts

    derived = json.loads((KARPENTER_REFERENCE / "karpenter.values.json").read_text())
    recorded = chart_facts("karpenter", "1.14.1").data["values"]

    def same(rec, der, path=""):
        if isinstance(rec, dict):
            assert isinstance(der, dict), path
            for k, v in rec.items():
                assert k in der, f"{path}.{k}"
                same(v, der[k], f"{path}.{k}")
        else:
            assert rec == der, path

    same(recorded, derived)


def test_the_synthesized_pools_are_what_the_model_reads(shapes):
    """Every NodePool the ray-cluster stack creates is modelled, and nothing else makes Karpenter nodes."""
    shape = shapes("karpenter-multi")
    pools = {name for _, stack in stack_items(shape.synth) for name in karpenter_objects(stack, "NodePool")}
    assert pools == {g.name for g in shape.cfg.cluster.karpenter_pools}
    assert {n.group for n in shape.model.nodes.values() if n.karpenter} == pools
    assert set(shape.synth["infra"]["resource"]["aws_eks_node_group"]) == {"core"}


# ------------------------------------------------------------------------------------- GPU metrics on Karpenter's nodes
DCGM = "helm/nvidia-dcgm-exporter/dcgm-exporter"


def _gpu_pool_nodes(model: ClusterModel) -> set[str]:
    return {n for n, node in model.nodes.items() if node.karpenter and node.gpus}


def _dcgm_values(synth: dict) -> list:
    return synth["ray"]["resource"]["helm_release"]["dcgm_exporter"]["values"]


def test_the_dcgm_exporter_lands_on_every_karpenter_gpu_node_and_nowhere_else(shapes):
    """The Karpenter example turns GPU metrics on: the DCGM exporter has a pod on every node its GPU pool can create
    (each allowed size, Spot and On-Demand), on no CPU pool node and not on core; each of those nodes takes its
    requests (100m/128Mi) before any Ray pod's."""
    shape = shapes("karpenter")
    assert shape.cfg.observability.dcgm_exporter and shape.cfg.observability.scrape_mode == "monitors"
    model = shape.model
    gpu_nodes = _gpu_pool_nodes(model)
    assert gpu_nodes == {f"gpu/{t}/{c}" for t in ("g5.2xlarge", "g5.4xlarge", "g5.8xlarge")
                         for c in ("spot", "on-demand")}
    assert model.placements[DCGM].nodes == gpu_nodes, model.placements[DCGM].explain()
    assert _mismatches(shape, model, DCGM) == []
    dcgm = pod_requests(model.workloads[DCGM].spec)
    assert (dcgm.get(CPU), dcgm.get(MEMORY)) == (100, 128 * 2 ** 20)
    without = ClusterModel.from_synth(_without_dcgm(shape), shape.documents)
    for n in model.nodes:
        gained = without.free(n) - model.free(n)
        expected = (100, 128 * 2 ** 20, 1) if n in gpu_nodes else (0, 0, 0)
        assert (gained.get(CPU), gained.get(MEMORY), gained.get(PODS)) == expected, n


def _without_dcgm(shape) -> dict:
    synth = shape.copy_synth()
    del synth["ray"]["resource"]["helm_release"]["dcgm_exporter"]
    return synth


def test_the_pod_fit_check_subtracts_the_dcgm_exporter_on_a_karpenter_pool(shapes):
    """The example's GPU worker at the room the config reports on its smallest pool type is accepted and fits every
    GPU pool node in the model; a millicore more is refused (naming the field), and would fit nowhere on that type
    -- while without the DCGM exporter the same value is accepted and fits."""
    import yaml

    from config import ConfigError, parse_config

    shape = shapes("karpenter")
    data = yaml.safe_load((ROOT / "config" / "examples" / "karpenter-gpu.yaml").read_text())
    room = shape.cfg.pod_room_on(lookup("g5.2xlarge"), "gpu")
    worker = data["ray"]["worker_groups"][0]
    assert worker["node_group"] == "gpu"
    worker["cpu"] = f"{room.cpu_millicores}m"
    parse_config(data)
    worker["cpu"] = f"{room.cpu_millicores + 1}m"
    with pytest.raises(ConfigError, match=r"^config: ray\.worker_groups\[0\]\.cpu: .* does not fit one g5\.2xlarge "
                                          r"node of node group 'gpu'"):
        parse_config(data)
    parse_config({**data, "observability": {**data["observability"], "dcgm_exporter": False}})

    synth = shape.copy_synth()
    spec = synth["ray-cluster"]["resource"]["kubernetes_manifest"]["ray_cluster"]["manifest"]["spec"]
    res = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    key = f"RayCluster/{shape.cfg.ray.cluster_name}/worker/gpu-group"
    res["requests"]["cpu"] = res["limits"]["cpu"] = f"{room.cpu_millicores}m"
    assert shape.build(synth).placements[key].nodes == _gpu_pool_nodes(shape.model)
    res["requests"]["cpu"] = res["limits"]["cpu"] = f"{room.cpu_millicores + 1}m"
    model = shape.build(synth)
    assert model.placements[key].problems["gpu/g5.2xlarge/spot"] == (
        f"insufficient cpu: needs {room.cpu_millicores + 1}m, {room.cpu_millicores}m free")
    without = shape.build({**synth, "ray": _without_dcgm(shape)["ray"]})
    assert "gpu/g5.2xlarge/spot" in without.placements[key].nodes


def test_without_our_gpu_label_the_dcgm_exporter_skips_karpenters_gpu_nodes_before_1_35(shapes):
    """It selects nvidia.com/gpu.present, which nodeadm sets only from kubelet 1.35: on 1.34 Karpenter's GPU nodes
    carry it only from our pool template."""
    shape = shapes("karpenter")
    on_1_34 = ClusterModel.from_synth(shape.synth, shape.documents, "1.34")
    assert on_1_34.placements[DCGM].nodes == _gpu_pool_nodes(on_1_34)
    synth = shape.copy_synth()
    del _pool(synth, "gpu")["spec"]["template"]["metadata"]["labels"]["nvidia.com/gpu.present"]
    model = ClusterModel.from_synth(synth, shape.documents, "1.34")
    assert model.placements[DCGM].nodes == frozenset()
    assert model.placements[DCGM].problems["gpu/g5.2xlarge/spot"] == (
        "nodeSelector {'nvidia.com/gpu.present': 'true'} does not match the node's labels")
    assert _mismatches(shape, model, DCGM)


def test_with_the_charts_tolerations_the_dcgm_exporter_misses_every_gpu_node(shapes):
    """The chart tolerates only the control-plane taint: without our every-taint toleration the GPU taint of the pool
    keeps it off every GPU node Karpenter launches."""
    shape = shapes("karpenter")
    synth = shape.copy_synth()
    values = _dcgm_values(synth)
    first = json.loads(values[0])
    del first["tolerations"]
    values[0] = json.dumps(first)
    model = shape.build(synth)
    assert model.placements[DCGM].nodes == frozenset()
    assert "untolerated taint nvidia.com/gpu=true:NoSchedule" in model.placements[DCGM].problems["gpu/g5.4xlarge/spot"]
    assert _mismatches(shape, model, DCGM)


def test_dcgm_requests_the_table_does_not_know_are_drift_on_karpenters_nodes(shapes):
    """Requests set in our values (or a chart bump) that config/capacity.py DAEMONSETS does not say: the node-fit
    checks would count less than runs, on every GPU pool node."""
    from .test_overhead import overhead_drift

    shape = shapes("karpenter")
    synth = shape.copy_synth()
    _dcgm_values(synth).append(json.dumps({"resources": {"requests": {"cpu": "300m", "memory": "256Mi"}}}))
    drift = overhead_drift(shape, shape.build(synth))
    assert {m.split(":")[0] for m in drift if DCGM in m} == {n for n in _gpu_pool_nodes(shape.model)}
    assert overhead_drift(shape, shape.model) == []


# ------------------------------------------------------------------------------------- a pool node deleted anyway
# Karpenter's terminator (sigs.k8s.io/karpenter at v1.14.1's pin, pkg/controllers/node/termination/terminator/
# terminator.go) taints a deleted node karpenter.sh/disrupted:NoSchedule, drains every pod not tolerating that taint,
# and deletes each one at (deadline - its terminationGracePeriodSeconds), do-not-disrupt or not; the deadline is the
# NodeClaim's deletion plus the pool's terminationGracePeriod, after which the instance goes.
DISRUPTED_TAINT = {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}
_UNIT = {"s": 1, "m": 60, "h": 3600}


def _seconds(duration: str) -> int:
    parts = re.findall(r"([0-9]+)([smh])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * _UNIT[u] for n, u in parts)


def forced_deletion_problems(model: ClusterModel, synth: dict) -> list[str]:
    """What goes wrong when a pool node is deleted anyway (Spot interruption, node repair, kubectl delete): a drained
    pod whose grace period is longer than the pool's is cut short; a pool's longer than its longest Ray worker's keeps
    a node (and its bill) after every pod on it has stopped; without one, a do-not-disrupt pod holds it forever."""
    problems = []
    for name, pool in _pools(synth).items():
        tgp = pool["spec"]["template"]["spec"].get("terminationGracePeriod")
        if tgp is None:
            problems.append(f"{name}: no terminationGracePeriod: a do-not-disrupt pod holds a deleted node forever")
            continue
        nodes = {n for n, node in model.nodes.items() if node.karpenter and node.group == name}
        graces = {key: model.workloads[key].spec.get("terminationGracePeriodSeconds", 30)
                  for key, placement in model.placements.items() if placement.nodes & nodes
                  and untolerated_taints(model.workloads[key].spec.get("tolerations") or [], [DISRUPTED_TAINT])}
        workers = [g for key, g in graces.items() if key.startswith("RayCluster/")]
        assert workers, name
        problems += [f"{name}: {key} gets {_seconds(tgp)}s of its {g}s" for key, g in graces.items()
                     if g > _seconds(tgp)]
        if _seconds(tgp) > max(workers):
            problems.append(f"{name}: a deleted node stays {_seconds(tgp)}s, its Ray workers stop within "
                            f"{max(workers)}s")
    return problems


@pytest.mark.parametrize("shape_name", ["karpenter", "karpenter-default", "karpenter-multi"])
def test_a_deleted_pool_node_gives_its_workers_their_grace_period_then_goes(shapes, shape_name):
    shape = shapes(shape_name)
    assert forced_deletion_problems(shape.model, shape.synth) == []


@pytest.mark.parametrize(("tgp", "expected"), [
    ("24h", "gpu: a deleted node stays 86400s, its Ray workers stop within 90s"),
    ("60s", "gpu: RayCluster/kuberay/worker/gpu-group gets 60s of its 90s"),
    (None, "gpu: no terminationGracePeriod: a do-not-disrupt pod holds a deleted node forever"),
])
def test_a_pool_grace_period_other_than_the_workers_is_caught(shapes, tgp, expected):
    shape = shapes("karpenter")
    synth = shape.copy_synth()
    template = _pool(synth, "gpu")["spec"]["template"]["spec"]
    if tgp is None:
        del template["terminationGracePeriod"]
    else:
        template["terminationGracePeriod"] = tgp
    assert expected in forced_deletion_problems(shape.build(synth), synth)
