"""config/capacity.py DAEMONSETS (what synth-time node-fit validation subtracts per node) against the cluster model
(which DaemonSets the synthesized stacks put on each node, and what they request): the same DaemonSets on every node
of each group, with the same requests, on every shape. A drift on either side fails here."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from decimal import ROUND_CEILING, Decimal

import pytest

from config import capacity
from config.instances import lookup

from .conftest import SHAPE_NAMES, Shape
from .facts import table_daemonset
from .model import ClusterModel
from .scheduling import CPU, MEMORY, PODS, Resources, pod_requests

# DAEMONSETS name -> the model's workload key of that DaemonSet.
MODEL_KEYS = {
    "aws-node": "addon/vpc-cni/aws-node",
    "kube-proxy": "addon/kube-proxy/kube-proxy",
    "eks-pod-identity-agent": "addon/eks-pod-identity-agent/eks-pod-identity-agent",
    "fsx-csi-node": "addon/aws-fsx-csi-driver/fsx-csi-node",
    "nvidia-device-plugin": "helm/nvidia-device-plugin/device-plugin",
    "kube-prometheus-stack-prometheus-node-exporter": "helm/kube-prometheus-stack/node-exporter",
    "cloudwatch-agent": "addon/amazon-cloudwatch-observability/cloudwatch-agent",
    "fluent-bit": "addon/amazon-cloudwatch-observability/fluent-bit",
    "dcgm-exporter": "addon/amazon-cloudwatch-observability/dcgm-exporter",
    "nvidia-dcgm-exporter": "helm/nvidia-dcgm-exporter/dcgm-exporter",
}
MIB = 2 ** 20


def table_resources(d: capacity.DaemonSet) -> Resources:
    """A table entry's pod requests in the model's units (millicores, bytes)."""
    r = d.requests
    cpu = r.get("cpu", Decimal(0)).to_integral_value(ROUND_CEILING)
    memory = (r.get("memory", Decimal(0)) * MIB).to_integral_value(ROUND_CEILING)
    return Resources({CPU: int(cpu), MEMORY: int(memory)})


def _cpu_memory(r: Resources) -> tuple[int, int]:
    return r.get(CPU), r.get(MEMORY)


def overhead_drift(shape: Shape, model: ClusterModel) -> list[str]:
    """Every difference between the table and the model, per node (empty: they agree)."""
    obs = shape.cfg.observability
    out = []
    for table_name in sorted({d.name for d in capacity.DAEMONSETS} - set(MODEL_KEYS)):
        out.append(f"DAEMONSETS entry {table_name} is not mapped to a model workload (MODEL_KEYS)")
    overhead = model.daemonset_overhead()
    for group, nodes in sorted(model.groups().items()):
        role = shape.roles[group]
        table = capacity.daemonsets_on(role, kube_prometheus_stack=obs.kube_prometheus_stack,
                                       container_insights=obs.container_insights, dcgm_exporter=obs.dcgm_exporter)
        expected = {MODEL_KEYS.get(d.name, d.name): d for d in table}
        total = Resources({PODS: len(table)})
        for d in table:
            total = total + table_resources(d)
        for node in nodes:
            placed = {w.key: w for w in model.daemonsets_on(node.name)}
            for key in sorted(set(placed) - set(expected)):
                out.append(f"{node.name} ({role}): the model places {key}, the table does not list it")
            for key in sorted(set(expected) - set(placed)):
                out.append(f"{node.name} ({role}): the table lists {expected[key].name}, the model places no pod there")
            for key in sorted(set(placed) & set(expected)):
                model_r, table_r = pod_requests(placed[key].spec), table_resources(expected[key])
                if _cpu_memory(model_r) != _cpu_memory(table_r):
                    out.append(f"{node.name}: {key} requests {model_r} in the model, {table_r} in the table")
        if (_cpu_memory(overhead[group]), overhead[group].get(PODS)) != (_cpu_memory(total), total.get(PODS)):
            out.append(f"group {group}: model overhead {overhead[group]}, table {total}")
    return out


@pytest.mark.parametrize("shape_name", SHAPE_NAMES)
def test_the_daemonset_table_matches_the_model(shapes, shape_name):
    shape = shapes(shape_name)
    assert overhead_drift(shape, shape.model) == []


@pytest.mark.parametrize("shape_name", SHAPE_NAMES)
def test_the_config_leaves_a_ray_pod_the_room_the_model_leaves(shapes, shape_name):
    """What synth-time validation lets one Ray pod request on a node (AppConfig.pod_room_on: the pod-fit and the
    max_replicas checks, managed groups and Karpenter pools alike) is what the model leaves on that node after the
    DaemonSets it places there -- the DCGM exporter's on GPU nodes included."""
    shape = shapes(shape_name)
    for n, node in shape.model.nodes.items():
        room = shape.cfg.pod_room_on(lookup(node.instance_type.name), shape.roles[node.group])
        free = shape.model.free(n)
        assert (room.cpu_millicores, room.memory_mebibytes * MIB) == (free.get(CPU), free.get(MEMORY)), n


def test_every_daemonset_the_model_places_is_in_the_table(shapes):
    placed = {w.key for name in SHAPE_NAMES for m in [shapes(name).model] for n in m.nodes for w in m.daemonsets_on(n)}
    assert placed == set(MODEL_KEYS.values())


def test_kube_proxy_requests_have_one_recorded_value(shapes):
    """kube-proxy's requests are not published: the model renders the table's value, unverified as the table says."""
    entry = table_daemonset("kube-proxy")
    assert not entry.verified
    w = shapes("default").model.workloads["addon/kube-proxy/kube-proxy"]
    assert _cpu_memory(pod_requests(w.spec)) == _cpu_memory(table_resources(entry))
    assert w.requests_verified is False


# ------------------------------------------------------------------------------------------ each side can drift
def _table_with(monkeypatch, name: str, change) -> None:
    monkeypatch.setattr(capacity, "DAEMONSETS", tuple(
        x for d in capacity.DAEMONSETS for x in ([change(d)] if d.name == name else [d]) if x is not None))


def test_a_table_entry_missing_is_drift(shapes, monkeypatch):
    shape = shapes("prod")
    _table_with(monkeypatch, "fluent-bit", lambda d: None)
    drift = overhead_drift(shape, shape.model)
    assert "core/m6i.2xlarge (core): the model places addon/amazon-cloudwatch-observability/fluent-bit, the table " \
           "does not list it" in drift
    assert any(m.startswith("group gpu: model overhead") for m in drift)


def test_table_requests_that_differ_are_drift(shapes, monkeypatch):
    shape = shapes("prod-addon-dcgm")
    _table_with(monkeypatch, "dcgm-exporter", lambda d: replace(d, containers=({"cpu": "250m", "memory": "64Mi"},)))
    drift = overhead_drift(shape, shape.model)
    assert [m for m in drift if m.startswith("gpu/g5.2xlarge: addon/amazon-cloudwatch-observability/dcgm-exporter")]
    assert not [m for m in drift if m.startswith("core/")]  # dcgm-exporter is on GPU nodes only


def test_a_table_entry_on_the_wrong_nodes_is_drift(shapes, monkeypatch):
    shape = shapes("prod-addon-dcgm")
    _table_with(monkeypatch, "dcgm-exporter", lambda d: replace(d, nodes="all"))
    assert "core/m6i.2xlarge (core): the table lists dcgm-exporter, the model places no pod there" in \
        overhead_drift(shape, shape.model)


def test_model_requests_that_differ_are_drift(shapes):
    """Container Insights configured to request more for Fluent Bit: the table no longer says what runs."""
    shape = shapes("prod")
    synth = shape.copy_synth()
    addon = synth["ray"]["resource"]["aws_eks_addon"]["container_insights"]
    values = json.loads(addon["configuration_values"])
    values["containerLogs"] = {"fluentBit": {"resources": {"requests": {"cpu": "100m", "memory": "25Mi"}}}}
    addon["configuration_values"] = json.dumps(values)
    drift = overhead_drift(shape, shape.build(synth))
    assert [m for m in drift if "fluent-bit requests cpu=100m" in m]


def test_a_new_daemonset_is_drift(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    daemonset = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "log-shipper"},
                 "spec": {"template": {"spec": {"tolerations": [{"operator": "Exists"}], "containers": [
                     {"name": "shipper", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]}}}}
    manifests = synth["ray"]["resource"].setdefault("kubernetes_manifest", {})
    manifests["log_shipper"] = {"manifest": copy.deepcopy(daemonset)}
    drift = overhead_drift(shape, shape.build(synth))
    assert "gpu/g5.xlarge (gpu): the model places DaemonSet/log-shipper, the table does not list it" in drift
