"""GPU metrics: NVIDIA's DCGM exporter (Helm chart dcgm-exporter) on every GPU node, and only there.

It selects nodes by the GPU label every GPU node carries (``nvidia.com/gpu.present=true``: the managed GPU groups'
labels, and what Karpenter's GPU NodePools keep), not by node-group name, and tolerates every taint (the GPU taint
among them) like the device plugin: a GPU node without it has no GPU metrics. Prometheus finds it through the
chart's ServiceMonitor when kube-prometheus-stack is installed (the release then waits for that chart: the
ServiceMonitor kind must exist when Helm installs it), through prometheus.io/* pod annotations otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_helm.release import Release
from constructs import Construct

from conventions.kubernetes import GPU_PRESENT_LABEL

DCGM_REPO = "https://nvidia.github.io/dcgm-exporter/helm-charts"
# The release name is the DaemonSet's name (the chart's fullname: the release name holds the chart name).
DCGM_RELEASE = "nvidia-dcgm-exporter"
DCGM_NAMESPACE = "kube-system"
# deployment/values.yaml service.port: the exporter's /metrics.
DCGM_METRICS_PORT = 9400


def dcgm_exporter_values(service_monitor: bool, monitor_labels: dict[str, str]) -> dict:
    """Placement on GPU nodes by label, every taint tolerated (chart default: control-plane only), node-critical
    (the chart's default); scraping by ServiceMonitor or annotations. Requests stay the chart's (100m/128Mi,
    config/capacity.py DAEMONSETS counts them)."""
    values: dict = {
        "nodeSelector": {GPU_PRESENT_LABEL: "true"},
        "affinity": {},
        "tolerations": [{"operator": "Exists"}],
        "priorityClassName": "system-node-critical",
        "serviceMonitor": {"enabled": service_monitor},
    }
    if service_monitor:
        values["serviceMonitor"]["additionalLabels"] = dict(monitor_labels)
    else:
        values["podAnnotations"] = {"prometheus.io/scrape": "true", "prometheus.io/port": str(DCGM_METRICS_PORT),
                                    "prometheus.io/path": "/metrics"}
    return values


@dataclass(frozen=True)
class DcgmExporterProps:
    chart_version: str
    service_monitor: bool  # kube-prometheus-stack (or another Prometheus Operator) scrapes it
    monitor_labels: dict[str, str] = field(default_factory=dict)
    # What must be applied first: the release that installs the ServiceMonitor CRD.
    depends_on: Sequence[ITerraformDependable] = ()


class DcgmExporter(Construct):
    """Address: ``helm_release.dcgm_exporter``."""

    release: Release

    def __init__(self, scope: Construct, id: str, props: DcgmExporterProps) -> None:
        super().__init__(scope, id)
        self.release = Release(self, "dcgm_exporter", name=DCGM_RELEASE, namespace=DCGM_NAMESPACE,
                               repository=DCGM_REPO, chart="dcgm-exporter", version=props.chart_version,
                               values=[json.dumps(dcgm_exporter_values(props.service_monitor,
                                                                       props.monitor_labels))],
                               depends_on=list(props.depends_on) or None)
