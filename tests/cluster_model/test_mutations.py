"""Each placement check can fail: one input changed in a copy of a session synth (or of the rendered documents)
moves a workload, and the model reports it, with the reason, where the intended-placement check would fail."""

from __future__ import annotations

import copy
import fnmatch
import json

import pytest

from config.versions import SUPPORTED_KUBERNETES_VERSIONS
from conventions.kubernetes import GPU_PRESENT_LABEL
from tests.orchestrator_objects import packaged_steps, with_packaged_steps

from .intended import INTENDED, placement_mismatch
from .model import ClusterModel
from .scheduling import pod_requests

GPU_TAINT_TEXT = "untolerated taint nvidia.com/gpu=true:NoSchedule"


def _mismatches(shape, model, pattern: str) -> list[str]:
    where, _ = INTENDED[pattern]
    keys = [k for k in model.workloads if fnmatch.fnmatchcase(k, pattern)]
    assert keys, pattern
    return [m for k in keys if (m := placement_mismatch(model, shape.roles, shape.cfg, k, where))]


def _raycluster(synth: dict) -> dict:
    return synth["ray-cluster"]["resource"]["kubernetes_manifest"]["ray_cluster"]["manifest"]["spec"]


def _worker(synth: dict, i: int = 0) -> dict:
    return _raycluster(synth)["workerGroupSpecs"][i]["template"]["spec"]


def _worker_key(shape, i: int = 0) -> str:
    return f"RayCluster/{shape.cfg.ray.cluster_name}/worker/{shape.cfg.ray.worker_groups[i].name}"


def _gpu_group(synth: dict) -> dict:
    return synth["infra"]["resource"]["aws_eks_node_group"]["gpu"]


def test_unmodified_shapes_pass(shapes):
    """The baseline of the mutations below: these placements hold as synthesized."""
    for name, pattern in (("default", "RayCluster/*/worker/*"), ("default", "addon/coredns/coredns"),
                          ("dev", "RayCluster/*/head"), ("prod", "RayCluster/*/worker/*"),
                          ("prod-with-cpu-group", "helm/kube-prometheus-stack/grafana")):
        shape = shapes(name)
        assert _mismatches(shape, shape.model, pattern) == [], (name, pattern)


def test_worker_without_gpu_toleration_schedules_nowhere(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    del _worker(synth)["tolerations"]
    placement = shape.build(synth).placements[_worker_key(shape)]
    assert placement.nodes == frozenset()
    assert GPU_TAINT_TEXT in placement.problems["gpu/g5.xlarge"]
    assert "nodeSelector {'ray-eks/node-group': 'gpu'}" in placement.problems["core/m6i.2xlarge"]
    assert _mismatches(shape, shape.build(synth), "RayCluster/*/worker/*")


def test_worker_asking_for_more_cpu_than_a_node_has_free_fits_nowhere(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    res = _worker(synth)["containers"][0]["resources"]
    res["requests"]["cpu"] = res["limits"]["cpu"] = "3900m"  # g5.xlarge: 3920m allocatable, DaemonSets take 180m
    placement = shape.build(synth).placements[_worker_key(shape)]
    assert placement.nodes == frozenset()
    assert placement.problems["gpu/g5.xlarge"] == "insufficient cpu: needs 3900m, 3740m free"


def test_worker_asking_for_more_gpus_than_the_type_has_fits_nowhere(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    res = _worker(synth)["containers"][0]["resources"]
    res["requests"]["nvidia.com/gpu"] = res["limits"]["nvidia.com/gpu"] = "2"
    placement = shape.build(synth).placements[_worker_key(shape)]
    assert placement.nodes == frozenset()
    assert "insufficient nvidia.com/gpu: needs 2, 1 free" in placement.problems["gpu/g5.xlarge"]


def test_without_the_device_plugin_no_node_offers_gpus(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    del synth["ray"]["resource"]["helm_release"]["nvidia_device_plugin"]
    model = shape.build(synth)
    assert all(model.offered[n].get("nvidia.com/gpu") == 0 for n in model.nodes)
    problem = model.placements[_worker_key(shape)].problems["gpu/g5.xlarge"]
    assert "insufficient nvidia.com/gpu: needs 1, 0 free" in problem


def test_gpu_workers_need_the_fsx_node_plugin_on_gpu_nodes(shapes):
    """The FSx CSI node plugin tolerates every taint by default; told not to, it leaves GPU nodes and the GPU
    workers (which mount FSx) cannot run there."""
    shape = shapes("default")
    synth = shape.copy_synth()
    synth["infra"]["resource"]["aws_eks_addon"]["aws_fsx_csi_driver"]["configuration_values"] = json.dumps(
        {"node": {"tolerateAllTaints": False}})
    model = shape.build(synth)
    assert model.placements["addon/aws-fsx-csi-driver/fsx-csi-node"].groups == {"core"}
    placement = model.placements[_worker_key(shape)]
    assert placement.problems["gpu/g5.xlarge"] == "no CSI node plugin for fsx.csi.aws.com runs on the node"
    assert _mismatches(shape, model, "addon/aws-fsx-csi-driver/fsx-csi-node")


def test_head_without_node_selector_leaves_the_core_group(shapes):
    shape = shapes("dev")
    synth = shape.copy_synth()
    del _raycluster(synth)["headGroupSpec"]["template"]["spec"]["nodeSelector"]
    model = shape.build(synth)
    assert model.placements[f"RayCluster/{shape.cfg.ray.cluster_name}/head"].groups == {"core", "cpu"}
    assert _mismatches(shape, model, "RayCluster/*/head")


def test_head_too_big_for_core_fits_nowhere(shapes):
    shape = shapes("default")
    synth = shape.copy_synth()
    head = _raycluster(synth)["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]
    head["requests"]["memory"] = head["limits"]["memory"] = "29Gi"  # + the autoscaler sidecar's 512Mi
    placement = shape.build(synth).placements[f"RayCluster/{shape.cfg.ray.cluster_name}/head"]
    assert placement.nodes == frozenset()
    assert "insufficient memory" in placement.problems["core/m6i.2xlarge"]


def test_the_autoscaler_sidecar_counts_in_the_head(shapes):
    shape = shapes("default")
    head = shape.model.workloads[f"RayCluster/{shape.cfg.ray.cluster_name}/head"].spec
    assert [c["name"] for c in head["containers"]] == ["ray-head", "autoscaler"]
    synth = shape.copy_synth()
    _raycluster(synth)["enableInTreeAutoscaling"] = False
    head = shape.build(synth).workloads[f"RayCluster/{shape.cfg.ray.cluster_name}/head"].spec
    assert [c["name"] for c in head["containers"]] == ["ray-head"]


def _without_addon_configuration(synth: dict, stack: str, key: str) -> dict:
    del synth[stack]["resource"]["aws_eks_addon"][key]["configuration_values"]
    return synth


def test_the_gpu_taint_keeps_unselected_pods_off_gpu_nodes(shapes):
    """CoreDNS without our node selector (the add-on's defaults): the GPU taint alone keeps it on core; without the
    taint it spills onto the GPU nodes."""
    shape = shapes("default")
    synth = _without_addon_configuration(shape.copy_synth(), "infra", "coredns")
    assert shape.build(synth).placements["addon/coredns/coredns"].groups == {"core"}
    del _gpu_group(synth)["taint"]
    model = shape.build(synth)
    assert model.placements["addon/coredns/coredns"].groups == {"core", "gpu"}
    assert _mismatches(shape, model, "addon/coredns/coredns")


def test_a_prefer_no_schedule_taint_does_not_keep_pods_off(shapes):
    shape = shapes("default")
    synth = _without_addon_configuration(shape.copy_synth(), "infra", "aws_fsx_csi_driver")
    _gpu_group(synth)["taint"][0]["effect"] = "PREFER_NO_SCHEDULE"
    assert shape.build(synth).placements["addon/aws-fsx-csi-driver/fsx-csi-controller"].groups == {"core", "gpu"}


@pytest.mark.parametrize("shape_name,stack,key,workload", [
    ("dev", "infra", "coredns", "addon/coredns/coredns"),
    ("dev", "infra", "aws_fsx_csi_driver", "addon/aws-fsx-csi-driver/fsx-csi-controller"),
    ("prod-with-cpu-group", "ray", "container_insights", "addon/amazon-cloudwatch-observability/controller-manager"),
])
def test_addon_deployments_without_our_selector_go_to_untainted_worker_groups(shapes, shape_name, stack, key,
                                                                              workload):
    """The add-ons' Deployments stay on core only through their configuration_values: without them they also go to
    the untainted cpu workers' group."""
    shape = shapes(shape_name)
    assert shape.model.placements[workload].groups == {"core"}
    model = shape.build(_without_addon_configuration(shape.copy_synth(), stack, key))
    assert model.placements[workload].groups == {"core", "cpu"}
    assert _mismatches(shape, model, workload)


def test_kube_prometheus_stack_admission_jobs_without_our_selector_leave_core(shapes):
    shape = shapes("prod-with-cpu-group")
    synth = shape.copy_synth()
    release = synth["ray"]["resource"]["helm_release"]["kube_prometheus_stack"]
    unselected = {"prometheusOperator": {"admissionWebhooks": {"patch": {"nodeSelector": None}}}}
    release["values"].append(json.dumps(unselected))
    model = shape.build(synth)
    for job in ("admission-create", "admission-patch"):
        assert model.placements[f"helm/kube-prometheus-stack/{job}"].groups == {"core", "cpu"}, job
        assert _mismatches(shape, model, f"helm/kube-prometheus-stack/{job}")


def test_daemonset_overhead_decides_whether_a_worker_fits(shapes):
    """prod's 7 CPU / 28Gi GPU worker fits a g5.2xlarge by 260Mi once the DaemonSets (Container Insights and the
    DCGM exporter among them; the add-on's own DCGM exporter off) have their share; 512Mi more, and it fits no node
    of the group; without Container Insights' and the DCGM exporter's DaemonSets (153Mi + 128Mi) it fits again."""
    shape = shapes("prod")
    synth = shape.copy_synth()
    res = _worker(synth)["containers"][0]["resources"]
    res["requests"]["memory"] = res["limits"]["memory"] = "28672Mi"
    assert _mismatches(shape, shape.build(synth), "RayCluster/*/worker/*") == []
    res["requests"]["memory"] = res["limits"]["memory"] = "29184Mi"
    model = shape.build(synth)
    assert model.placements[_worker_key(shape)].nodes == frozenset()
    assert model.placements[_worker_key(shape)].problems["gpu/g5.2xlarge"] == (
        "insufficient memory: needs 29184Mi, 28932Mi free")
    assert _mismatches(shape, model, "RayCluster/*/worker/*")
    del synth["ray"]["resource"]["aws_eks_addon"]  # without Container Insights' DaemonSets
    del synth["ray"]["resource"]["helm_release"]["dcgm_exporter"]  # and the DCGM exporter, it fits again
    assert _mismatches(shape, shape.build(synth), "RayCluster/*/worker/*") == []


def test_a_subchart_value_moves_its_workload(shapes):
    """kube-prometheus-stack's grafana.nodeSelector (a subchart value): removed with a null, Grafana goes to the
    untainted cpu group too."""
    shape = shapes("prod-with-cpu-group")
    synth = shape.copy_synth()
    release = synth["ray"]["resource"]["helm_release"]["kube_prometheus_stack"]
    release["values"].append(json.dumps({"grafana": {"nodeSelector": None}}))
    model = shape.build(synth)
    assert model.placements["helm/kube-prometheus-stack/grafana"].groups == {"core", "cpu"}
    assert _mismatches(shape, model, "helm/kube-prometheus-stack/grafana")


def test_orchestrator_job_without_selector_leaves_core(shapes, tmp_path):
    shape = shapes("prod-with-cpu-group")
    synth = shape.copy_synth()
    steps = packaged_steps(synth)
    del steps["train"]["spec"]["template"]["spec"]["nodeSelector"]
    model = shape.build(with_packaged_steps(synth, steps, tmp_path))
    assert model.placements["lambda/ray_orchestrator/train"].groups == {"core", "cpu"}
    assert _mismatches(shape, model, "lambda/ray_orchestrator/*")


def test_rendered_jobs_without_selector_leave_core(shapes):
    shape = shapes("dev")
    docs = copy.deepcopy(shape.documents)
    job = next(d for d in docs["submit-job.yaml"] if d["kind"] == "Job")
    del job["spec"]["template"]["spec"]["nodeSelector"]
    rayjob = next(d for d in docs["rayjob.yaml"] if d["kind"] == "RayJob")
    del rayjob["spec"]["submitterPodTemplate"]["spec"]["nodeSelector"]
    model = shape.build(docs=docs)
    assert _mismatches(shape, model, "render_jobs/submit-job.yaml/Job/*")
    assert _mismatches(shape, model, "render_jobs/rayjob.yaml/RayJob/*/submitter")


# ------------------------------------------------------------------------------------------ the device plugin
DEVICE_PLUGIN = "helm/nvidia-device-plugin/device-plugin"


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES_VERSIONS)
def test_device_plugin_lands_on_gpu_nodes_on_every_supported_version(shapes, version):
    """Our GPU groups carry nvidia.com/gpu.present themselves (nodeadm adds it only from kubelet 1.35): the device
    plugin runs on every GPU node and no other, and the GPU workers get their GPUs, on 1.33, 1.34 and 1.35."""
    shape = shapes("default")
    model = ClusterModel.from_synth(shape.synth, shape.documents, version)
    assert _mismatches(shape, model, DEVICE_PLUGIN) == []
    assert model.placements[DEVICE_PLUGIN].nodes == {"gpu/g5.xlarge"}
    assert model.offered["gpu/g5.xlarge"].get("nvidia.com/gpu") == 1
    assert _mismatches(shape, model, "RayCluster/*/worker/*") == []


def test_without_our_gpu_label_the_device_plugin_runs_nowhere_before_1_35(shapes):
    """Remove the label our GPU groups set: on 1.34 no GPU node carries it, the device plugin runs nowhere and the
    GPU workers fit nowhere; on 1.35 nodeadm's own label still places it."""
    shape = shapes("default")
    synth = shape.copy_synth()
    del _gpu_group(synth)["labels"][GPU_PRESENT_LABEL]
    on_1_34 = ClusterModel.from_synth(synth, shape.documents, "1.34")
    assert on_1_34.placements[DEVICE_PLUGIN].nodes == frozenset()
    assert on_1_34.placements[DEVICE_PLUGIN].problems["gpu/g5.xlarge"] == (
        f"nodeSelector {{'{GPU_PRESENT_LABEL}': 'true'}} does not match the node's labels")
    assert _mismatches(shape, on_1_34, DEVICE_PLUGIN)
    worker = on_1_34.placements[_worker_key(shape)]
    assert worker.nodes == frozenset()
    assert "insufficient nvidia.com/gpu: needs 1, 0 free" in worker.problems["gpu/g5.xlarge"]
    on_1_35 = ClusterModel.from_synth(synth, shape.documents, "1.35")
    assert on_1_35.placements[DEVICE_PLUGIN].nodes == {"gpu/g5.xlarge"}


def test_device_plugin_with_the_chart_default_placement_stays_on_gpu_nodes(shapes):
    """Our values delete the chart's NFD affinity (``affinity: null``) and select the GPU label instead; with the
    chart's affinity kept (``{}`` merges into it) the device plugin still matches only labelled GPU nodes."""
    shape = shapes("default-k8s-1.34")
    synth = shape.copy_synth()
    synth["ray"]["resource"]["helm_release"]["nvidia_device_plugin"]["values"].append(json.dumps({"affinity": {}}))
    model = shape.build(synth)
    assert model.workloads[DEVICE_PLUGIN].spec["affinity"]["nodeAffinity"]
    assert model.placements[DEVICE_PLUGIN].nodes == {"gpu/g5.xlarge"}


def test_daemonset_overhead_per_group(shapes):
    """The per-group DaemonSet requests besides kube-proxy's (unverified; config/capacity.py holds its one value),
    cross-checked against that table in test_overhead.py:
    default: aws-node 50m + fsx-csi-node 30m/104Mi on both groups;
    prod adds cloudwatch-agent 250m/128Mi + fluent-bit 50m/25Mi everywhere and our DCGM exporter
    (nvidia-dcgm-exporter) 100m/128Mi on GPU nodes, Container Insights' own dcgm-exporter (250m/128Mi) being off
    beside ours (node-exporter, pod-identity agent and device plugin request nothing)."""
    mib = 2 ** 20
    kube_proxy = pod_requests(shapes("default").model.workloads["addon/kube-proxy/kube-proxy"].spec)

    def verified(overhead: dict) -> dict:
        return {g: ((r - kube_proxy).get("cpu"), (r - kube_proxy).get("memory") // mib, r.get("pods"))
                for g, r in overhead.items()}

    assert verified(shapes("default").model.daemonset_overhead()) == {"core": (80, 104, 4), "gpu": (80, 104, 5)}
    assert verified(shapes("prod").model.daemonset_overhead()) == {"core": (380, 257, 7), "gpu": (480, 385, 9)}
    assert shapes("prod").model.unverified_daemonsets() == {
        "core": ["addon/kube-proxy/kube-proxy"], "gpu": ["addon/kube-proxy/kube-proxy"]}


# ------------------------------------------------------------------------------------- one DCGM exporter per GPU
OUR_DCGM, ADDON_DCGM = "helm/nvidia-dcgm-exporter/dcgm-exporter", "addon/amazon-cloudwatch-observability/dcgm-exporter"


def _dcgm_exporters(model: ClusterModel) -> dict[str, list[str]]:
    """GPU node -> the DCGM exporters with a pod there."""
    return {n: sorted(k for k in (OUR_DCGM, ADDON_DCGM) if k in model.placements and n in model.placements[k].nodes)
            for n, node in model.nodes.items() if node.gpus}


def test_with_ours_and_container_insights_each_gpu_node_runs_one_dcgm_exporter(shapes):
    """prod-gpu turns on both: the add-on's configuration turns its exporter off, so ours is the one DCGM watcher on
    every GPU node; without ours, the add-on's runs there; with the add-on's configuration as before (no
    dcgmExporter key) both would, which the intended placement table forbids."""
    shape = shapes("prod")
    cfg = shape.cfg.observability
    assert cfg.dcgm_exporter and cfg.container_insights
    assert set(map(tuple, _dcgm_exporters(shape.model).values())) == {(OUR_DCGM,)}
    assert set(map(tuple, _dcgm_exporters(shapes("prod-addon-dcgm").model).values())) == {(ADDON_DCGM,)}

    synth = shape.copy_synth()
    addon = synth["ray"]["resource"]["aws_eks_addon"]["container_insights"]
    values = json.loads(addon["configuration_values"])
    assert values.pop("dcgmExporter") == {"enabled": False}
    addon["configuration_values"] = json.dumps(values)
    model = shape.build(synth)
    assert set(map(tuple, _dcgm_exporters(model).values())) == {(ADDON_DCGM, OUR_DCGM)}
    _, deployed = INTENDED[ADDON_DCGM]  # what test_placement.py's test_lands_where_intended would report
    assert ADDON_DCGM in model.workloads and not deployed(shape.cfg)
