"""The Grafana dashboards provisioned with kube-prometheus-stack: Ray's own (generated from the pinned Ray package by
scripts/generate_dashboards.py into observability/ray_dashboards/), a GPU dashboard (DCGM exporter) and a platform
dashboard of ours (per worker group: workers wanted, running and pending, GPU utilisation and memory; the head's
memory against its limit). FSx throughput is not here: FSx publishes it to CloudWatch (AWS/FSx), not to Prometheus.

Every query reads the datasource through the ``datasource`` variable, as Ray's dashboards do: the Ray dashboard's
embedded panels pass ``var-datasource=<RAY_PROMETHEUS_NAME>`` (kube-prometheus-stack's datasource is "Prometheus").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

RAY_DASHBOARDS_DIR = Path(__file__).resolve().parent / "ray_dashboards"
# Ray's dashboards we provision (ray.dashboard.modules.metrics.grafana_dashboard_factory generate_<name>_...):
# the LLM ones are left out, their metrics come from vLLM/SGLang, not from Ray.
RAY_DASHBOARDS = ("default", "data", "train", "serve", "serve_deployment")
# DCGM exporter 4.5.3-4.8.2 labels its series with the node as "Hostname" (renamed "hostname" after that tag).
DCGM_HOST_LABEL = "Hostname"
GPU_DASHBOARD_UID = "rayEksGpus"
PLATFORM_DASHBOARD_UID = "rayEksPlatform"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class WorkerGroup:
    name: str
    gpus: int


@dataclass(frozen=True)
class PlatformDashboardProps:
    cluster_name: str  # the RayCluster (ray_io_cluster label, pod name prefix)
    namespace: str
    worker_groups: tuple[WorkerGroup, ...]


def ray_dashboard(name: str) -> dict:
    """One of Ray's generated dashboards (committed JSON; read by the stack, not by a construct)."""
    return json.loads((RAY_DASHBOARDS_DIR / f"{name}_grafana_dashboard.json").read_text())


def worker_pod_regex(cluster: str, group: str) -> str:
    """KubeRay names worker pods <cluster>-<group>-worker-<suffix>."""
    return f"{cluster}-{group}-worker-.+"


def head_pod_regex(cluster: str) -> str:
    return f"{cluster}-head-.+"


# ------------------------------------------------------------------------------------------------ building
def _target(expr: str, legend: str, ref: str) -> dict:
    return {"datasource": dict(DATASOURCE), "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(pid: int, title: str, targets: list[tuple[str, str]], x: int, y: int, unit: str = "short",
           description: str = "", w: int = 12, h: int = 8) -> dict:
    return {
        "id": pid, "type": "timeseries", "title": title, "description": description,
        "datasource": dict(DATASOURCE), "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [_target(e, legend, chr(65 + i)) for i, (e, legend) in enumerate(targets)],
    }


def _row(pid: int, title: str, y: int) -> dict:
    return {"id": pid, "type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}}


def _dashboard(uid: str, title: str, panels: list[dict], variables: list[dict], tags: list[str]) -> dict:
    return {
        "uid": uid, "title": title, "tags": tags, "editable": False, "schemaVersion": 39, "version": 1,
        "timezone": "browser", "refresh": "30s", "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "hide": 2, "current": {}}, *variables]},
        "annotations": {"list": []}, "links": [], "panels": panels,
    }


def gpu_dashboard() -> dict:
    """Every GPU the DCGM exporter sees, by node (DCGM exporter chart 4.8.2's default counters)."""
    host = DCGM_HOST_LABEL
    sel = f'{host}=~"$node"'
    by = f"{{{{{host}}}}} GPU {{{{gpu}}}}"
    variables = [{"name": "node", "label": "Node", "type": "query", "datasource": dict(DATASOURCE),
                  "query": {"query": f"label_values(DCGM_FI_DEV_GPU_UTIL, {host})", "refId": "node"},
                  "definition": f"label_values(DCGM_FI_DEV_GPU_UTIL, {host})", "includeAll": True, "multi": True,
                  "allValue": ".+", "refresh": 2, "current": {}}]
    specs = [
        ("GPU utilisation", [(f"DCGM_FI_DEV_GPU_UTIL{{{sel}}}", by)], "percent",
         "Percent of time a kernel ran on the GPU (DCGM_FI_DEV_GPU_UTIL)."),
        ("GPU memory used", [(f"DCGM_FI_DEV_FB_USED{{{sel}}}", by)], "decmbytes", "Framebuffer used, MiB."),
        ("GPU memory free", [(f"DCGM_FI_DEV_FB_FREE{{{sel}}}", by)], "decmbytes", "Framebuffer free, MiB."),
        ("Tensor core activity", [(f"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{{{sel}}}", by)], "percentunit",
         "Ratio of cycles the tensor pipe is active (profiling metric)."),
        ("GPU temperature", [(f"DCGM_FI_DEV_GPU_TEMP{{{sel}}}", by)], "celsius", ""),
        ("Power draw", [(f"DCGM_FI_DEV_POWER_USAGE{{{sel}}}", by)], "watt", ""),
        ("SM clock", [(f"DCGM_FI_DEV_SM_CLOCK{{{sel}}}", by)], "hertz", "MHz"),
        ("Last XID error", [(f"DCGM_FI_DEV_XID_ERRORS{{{sel}}}", by)], "short",
         "The last XID the driver reported (0: none); see NVIDIA's XID catalogue."),
    ]
    panels = [_panel(i + 1, title, targets, 12 * (i % 2), 8 * (i // 2), unit, desc)
              for i, (title, targets, unit, desc) in enumerate(specs)]
    return _dashboard(GPU_DASHBOARD_UID, "GPUs (DCGM exporter)", panels, variables, ["ray-eks", "gpu"])


def platform_dashboard(props: PlatformDashboardProps) -> dict:
    """Per worker group: workers wanted (the Ray autoscaler's active + pending nodes of that type: it sets both for
    every node type, v1 and v2, ray/autoscaler/_private/monitor.py and v2/metrics_reporter.py), pods running and
    Pending (kube-state-metrics), GPU utilisation and memory of the group's pods (DCGM, by the pod that holds the
    GPU: exported_pod, as kube-prometheus-stack's ServiceMonitor renames the exporter's pod label); and the head's
    memory against its limit (Ray's cgroup gauges on the head: what the OOM killer compares)."""
    c, ns = props.cluster_name, props.namespace
    panels: list[dict] = []
    pid, y = 1, 0
    head_sel = f'ray_io_cluster="{c}", RayNodeType="head"'
    panels.append(_panel(pid, "Ray head memory vs its limit", [
        (f"max(ray_node_cgroup_mem_used{{{head_sel}}})", "used"),
        (f"max(ray_node_cgroup_mem_total{{{head_sel}}})", "limit"),
    ], 0, y, "bytes", "The head container's memory (GCS, dashboard, autoscaler) against its cgroup limit; the "
                      "RayHeadMemoryHigh alert fires above the configured share.", w=24))
    pid, y = pid + 1, y + 8
    for g in props.worker_groups:
        panels.append(_row(pid, f"Worker group {g.name}", y))
        pid, y = pid + 1, y + 1
        pods = f'namespace="{ns}", pod=~"{worker_pod_regex(c, g.name)}"'
        ray_sel = f'ray_io_cluster="{c}", NodeType="{g.name}"'
        panels.append(_panel(pid, f"{g.name}: workers wanted / running / pending", [
            (f"sum(autoscaler_active_nodes{{{ray_sel}}}) + sum(autoscaler_pending_nodes{{{ray_sel}}})",
             "wanted (Ray autoscaler)"),
            (f'count(kube_pod_status_phase{{{pods}, phase="Running"}} == 1) or vector(0)', "running pods"),
            (f'count(kube_pod_status_phase{{{pods}, phase="Pending"}} == 1) or vector(0)', "pending pods"),
        ], 0, y, "short", "Pending for long: no node has room and none can be added (capacity, EC2 quota); see the "
                          "RayWorkerPodsPending runbook."))
        pid += 1
        if g.gpus:
            gpu_sel = f'exported_namespace="{ns}", exported_pod=~"{worker_pod_regex(c, g.name)}"'
            panels.append(_panel(pid, f"{g.name}: GPU utilisation and memory", [
                (f"avg(DCGM_FI_DEV_GPU_UTIL{{{gpu_sel}}})", "utilisation % (mean)"),
                (f"sum(DCGM_FI_DEV_FB_USED{{{gpu_sel}}}) / (sum(DCGM_FI_DEV_FB_USED{{{gpu_sel}}}) + "
                 f"sum(DCGM_FI_DEV_FB_FREE{{{gpu_sel}}})) * 100", "memory used %"),
            ], 12, y, "percent", "GPUs held by this group's pods (DCGM exporter)."))
            pid += 1
        y += 8
    return _dashboard(PLATFORM_DASHBOARD_UID, f"Ray platform: {c}", panels, [], ["ray-eks", "platform"])


def all_panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard.get("panels") or []:
        out.append(p)
        out += all_panels(p)
    return out


def expressions(dashboard: dict) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and query variables."""
    exprs = [t["expr"] for p in all_panels(dashboard) for t in p.get("targets") or [] if t.get("expr")]
    for v in (dashboard.get("templating") or {}).get("list") or []:
        q = v.get("query")
        if v.get("type") == "query" and isinstance(q, dict) and q.get("query"):
            exprs.append(q["query"])
        elif v.get("type") == "query" and isinstance(q, str):
            exprs.append(q)
    return exprs
