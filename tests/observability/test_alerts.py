"""The alerts: every rule passes `promtool check rules`, and each alert has a `promtool test rules` case in which it
fires and one in which it stays quiet (Debian's prometheus package; `make test` installs it). The PrometheusRule the
ray-cluster stack installs holds exactly these groups, labelled for kube-prometheus-stack's rule selector."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace

import pytest
import yaml

from config import load_config, parse_config
from observability.alerts import rule_groups
from stacks.ray_cluster import alert_props
from tests.helpers import ROOT, one, resources

NS, HEAD, WORKER = "ray", "kuberay-head-x7k2p", "kuberay-gpu-group-worker-q9z4m"


def props():
    return alert_props(load_config(str(ROOT / "config" / "examples" / "prod-gpu.yaml")))


def rules_by_name(p) -> dict[str, dict]:
    return {r["alert"]: r for g in rule_groups(p) for r in g["rules"]}


def series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def expanded(annotations: dict[str, str], labels: dict[str, str]) -> dict[str, str]:
    return {k: re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m.group(1)], v)
            for k, v in annotations.items()}


# alert -> (input series that make it fire, the labels it fires with, minutes to evaluate at, quiet series)
def cases(p) -> dict[str, tuple[list[dict], dict, int, list[dict]]]:
    head = {"ray_io_cluster": "kuberay", "RayNodeType": "head", "ip": "10.0.1.5"}
    gpu = {"exported_namespace": NS, "exported_pod": WORKER, "gpu": "0", "Hostname": "ip-10-0-3-7"}
    spare_gpu = {**gpu, "exported_pod": "", "exported_namespace": "", "gpu": "1"}  # held by no pod
    ds = {"namespace": "kube-system", "daemonset": "nvidia-dcgm-exporter"}
    used = p.head_memory_percent
    return {
        "RayHeadMemoryHigh": (
            [series("ray_node_cgroup_mem_used", head, f"{used + 5}x30"),
             series("ray_node_cgroup_mem_total", head, "100x30")],
            {}, p.head_memory_minutes + 2,
            [series("ray_node_cgroup_mem_used", head, f"{used + 5}x{p.head_memory_minutes - 2} {used - 5}x30"),
             series("ray_node_cgroup_mem_total", head, "100x40")]),
        "RayHeadRestarted": (
            [series("kube_pod_container_status_restarts_total",
                    {"namespace": NS, "pod": HEAD, "container": p.head_container}, "0 0 0 1 1 1 1 1")],
            {"namespace": NS, "pod": HEAD, "container": p.head_container}, 6,
            [series("kube_pod_container_status_restarts_total",
                    {"namespace": NS, "pod": HEAD, "container": p.head_container}, "2x30"),
             # a restarting worker is not the head
             series("kube_pod_container_status_restarts_total",
                    {"namespace": NS, "pod": WORKER, "container": "ray-worker"}, "0 0 1 1 1 1 1")]),
        "RayWorkerPodsPending": (
            [series("kube_pod_status_phase", {"namespace": NS, "pod": WORKER, "phase": "Pending"}, "1x40")],
            {"namespace": NS, "pod": WORKER}, p.worker_pending_minutes + 2,
            [series("kube_pod_status_phase", {"namespace": NS, "pod": WORKER, "phase": "Pending"},
                    f"1x{p.worker_pending_minutes - 3} 0x30"),
             series("kube_pod_status_phase", {"namespace": NS, "pod": HEAD, "phase": "Pending"}, "1x40")]),
        "RayPodNotStarting": (
            [series("kube_pod_init_container_status_waiting_reason",
                    {"namespace": NS, "pod": WORKER, "container": "fsx-permissions", "reason": "PodInitializing"},
                    "1x40")],
            {"namespace": NS, "pod": WORKER}, p.pod_start_minutes + 2,
            [series("kube_pod_init_container_status_waiting_reason",
                    {"namespace": NS, "pod": WORKER, "container": "fsx-permissions", "reason": "PodInitializing"},
                    f"1x{p.pod_start_minutes - 3} 0x30")]),
        "RayGpusIdle": (
            [series("DCGM_FI_DEV_GPU_UTIL", gpu, f"{p.gpu_idle_percent - 7}x60")],
            gpu, p.gpu_idle_minutes + 2,
            [series("DCGM_FI_DEV_GPU_UTIL", gpu, f"{p.gpu_idle_percent - 7}x{p.gpu_idle_minutes - 5} 95x30"),
             series("DCGM_FI_DEV_GPU_UTIL", spare_gpu, "0x60")]),
        "GpuNodeAgentMissing": (
            [series("kube_daemonset_status_desired_number_scheduled", ds, "2x20"),
             series("kube_daemonset_status_number_available", ds, "1x20")],
            ds, 12,
            [series("kube_daemonset_status_desired_number_scheduled", ds, "2x20"),
             series("kube_daemonset_status_number_available", ds, "1x5 2x15")]),
    }


def run_promtool(promtool: str, tmp_path, groups: list[dict], tests: list[dict]) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    return subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)


def test_every_rule_passes_promtool_check(promtool, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(props())}, sort_keys=False))
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 6 rules found" in r.stdout


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet(promtool, tmp_path):
    p = props()
    rules = rules_by_name(p)
    all_cases = cases(p)
    assert set(all_cases) == set(rules)
    tests = []
    for name, (firing, labels, minutes, quiet) in all_cases.items():
        alert_labels = {**labels, "severity": rules[name]["labels"]["severity"]}
        tests.append({"interval": "1m", "input_series": firing, "alert_rule_test": [{
            "eval_time": f"{minutes}m", "alertname": name, "exp_alerts": [{
                "exp_labels": alert_labels,
                "exp_annotations": expanded(rules[name]["annotations"], alert_labels)}]}]})
        tests.append({"interval": "1m", "input_series": quiet, "alert_rule_test": [{
            "eval_time": f"{minutes}m", "alertname": name, "exp_alerts": []}]})
    r = run_promtool(promtool, tmp_path, rule_groups(p), tests)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_threshold_change_moves_when_it_fires(promtool, tmp_path):
    """The quiet case of a stricter threshold fires: the config's thresholds reach the rules (and promtool's test
    fails on an alert that behaves otherwise, so the cases above are not vacuous)."""
    p = props()
    firing, labels, minutes, _ = cases(p)["RayHeadMemoryHigh"]
    stricter = replace(p, head_memory_percent=p.head_memory_percent + 10)
    r = run_promtool(promtool, tmp_path, rule_groups(stricter), [{
        "interval": "1m", "input_series": firing, "alert_rule_test": [{
            "eval_time": f"{minutes}m", "alertname": "RayHeadMemoryHigh", "exp_alerts": [{"exp_labels": {
                **labels, "severity": "warning"}}]}]}])
    assert r.returncode != 0 and "RayHeadMemoryHigh" in r.stdout + r.stderr


def test_gpu_alerts_only_where_there_is_what_they_read():
    cpu_only = parse_config({"cluster": {"node_groups": [
        {"name": "core", "role": "core", "instance_types": ["m6i.2xlarge"], "min_size": 2, "desired_size": 2}]},
        "ray": {"worker_groups": [{"name": "cpu", "node_group": "core", "gpus": 0, "cpu": "1", "memory": "4Gi"}]}})
    assert set(rules_by_name(alert_props(cpu_only))) == {
        "RayHeadMemoryHigh", "RayHeadRestarted", "RayWorkerPodsPending", "RayPodNotStarting"}
    no_dcgm = alert_props(parse_config({}))  # GPUs, no DCGM exporter: the device plugin is still watched
    assert "RayGpusIdle" not in rules_by_name(no_dcgm)
    assert rules_by_name(no_dcgm)["GpuNodeAgentMissing"]["expr"].count('daemonset=~"nvidia-device-plugin"') == 2


def test_thresholds_come_from_config():
    cfg = parse_config({"observability": {"dcgm_exporter": True,
                                          "alerts": {"gpu_idle_percent": 25, "gpu_idle_minutes": 60}}})
    idle = rules_by_name(alert_props(cfg))["RayGpusIdle"]
    assert idle["expr"].endswith("< 25") and idle["for"] == "60m"


def test_prod_installs_the_rules_as_a_prometheus_rule(prod_synth):
    rule = one(prod_synth["ray-cluster"], "kubernetes_manifest", "ray_alerts")["manifest"]
    assert rule["kind"] == "PrometheusRule" and rule["metadata"]["namespace"] == "ray"
    # kube-prometheus-stack's Prometheus selects rules by its release label (ruleSelectorNilUsesHelmValues).
    assert rule["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    assert rule["spec"]["groups"] == rule_groups(alert_props(prod_synth["_cfg"]))


def test_no_prometheus_no_rules(default_synth):
    assert "ray_alerts" not in resources(default_synth["ray-cluster"], "kubernetes_manifest")


@pytest.mark.parametrize("alert", ["RayHeadMemoryHigh", "RayHeadRestarted", "RayWorkerPodsPending",
                                   "RayPodNotStarting", "RayGpusIdle", "GpuNodeAgentMissing"])
def test_every_alert_has_a_runbook(alert):
    doc = (ROOT / "docs" / "observability.md").read_text()
    anchor = rules_by_name(props())[alert]["annotations"]["runbook_url"].split("#", 1)[1]
    assert f"### {alert}" in doc and anchor == alert.lower()
