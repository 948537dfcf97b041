"""The DCGM exporter (constructs_lib/dcgm_exporter.py) alone, from its props: the pinned chart from NVIDIA's
repository, on GPU nodes by label with every taint tolerated; scraped by ServiceMonitor or by annotations."""

from __future__ import annotations

import json

from constructs_lib.dcgm_exporter import DcgmExporter, DcgmExporterProps


def _alone(construct_synth, service_monitor: bool):
    return construct_synth(lambda stack: DcgmExporter(stack, "gpu_metrics", DcgmExporterProps(
        chart_version="4.8.2", service_monitor=service_monitor, monitor_labels={"release": "kps"})),
        providers=("helm",))


def test_pinned_chart_on_gpu_nodes(construct_synth):
    s = _alone(construct_synth, True)
    rel = s.one("helm_release", "dcgm_exporter")
    assert (rel["name"], rel["namespace"], rel["chart"], rel["version"]) == (
        "nvidia-dcgm-exporter", "kube-system", "dcgm-exporter", "4.8.2")
    assert rel["repository"] == "https://nvidia.github.io/dcgm-exporter/helm-charts"
    values = json.loads(rel["values"][0])
    assert values["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert values["tolerations"] == [{"operator": "Exists"}]
    assert values["serviceMonitor"] == {"enabled": True, "additionalLabels": {"release": "kps"}}
    assert "podAnnotations" not in values


def test_without_a_prometheus_operator_annotations(construct_synth):
    values = json.loads(_alone(construct_synth, False).one("helm_release", "dcgm_exporter")["values"][0])
    assert values["serviceMonitor"] == {"enabled": False}
    assert values["podAnnotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9400",
                                        "prometheus.io/path": "/metrics"}


def test_prod_installs_it_after_kube_prometheus_stack(prod_synth, default_synth):
    rel = prod_synth["ray"]["resource"]["helm_release"]["dcgm_exporter"]
    assert rel["depends_on"] == ["helm_release.kube_prometheus_stack"]  # its ServiceMonitor needs the CRD
    assert "dcgm_exporter" not in default_synth["ray"]["resource"]["helm_release"]
