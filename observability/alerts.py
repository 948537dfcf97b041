"""The alerts installed with kube-prometheus-stack (a PrometheusRule in the ray-cluster stack), as Prometheus rule
groups. Runbooks: docs/observability.md ("Alerts"); thresholds: config ``observability.alerts``.

Each alert reads metrics the pinned exporters export (tests/observability checks every name against the derived
lists): Ray's head gauges, kube-state-metrics (pods, DaemonSets), the DCGM exporter (GPU utilisation, labelled with
the pod holding the GPU: ``exported_pod``/``exported_namespace`` once kube-prometheus-stack's ServiceMonitor keeps
the target's own pod and namespace labels).
"""

from __future__ import annotations

from dataclasses import dataclass

from .dashboards import head_pod_regex, worker_pod_regex

RUNBOOK = "docs/observability.md#{anchor}"


@dataclass(frozen=True)
class AlertProps:
    cluster_name: str  # the RayCluster
    namespace: str  # the Ray pods' namespace
    head_container: str  # the Ray container of the head pod
    head_memory_percent: int
    head_memory_minutes: int
    worker_pending_minutes: int
    pod_start_minutes: int
    gpu_idle_percent: int
    gpu_idle_minutes: int
    # DaemonSets every GPU node needs, (namespace, name): the device plugin, the DCGM exporter (when installed).
    gpu_daemonsets: tuple[tuple[str, str], ...]
    gpu_metrics: bool  # the DCGM exporter is installed (RayGpusIdle reads it)


def _alert(name: str, expr: str, minutes: int, severity: str, summary: str, anchor: str) -> dict:
    rule = {"alert": name, "expr": expr, "labels": {"severity": severity},
            "annotations": {"summary": summary, "runbook_url": RUNBOOK.format(anchor=anchor)}}
    if minutes:
        rule["for"] = f"{minutes}m"
    return rule


def rule_groups(p: AlertProps) -> list[dict]:
    c, ns = p.cluster_name, p.namespace
    head = f'ray_io_cluster="{c}", RayNodeType="head"'
    workers = f'namespace="{ns}", pod=~"{worker_pod_regex(c, ".+")}"'
    ray_pods = f'namespace="{ns}", pod=~"{c}-.+"'
    rules = [
        _alert("RayHeadMemoryHigh",
               f"max(ray_node_cgroup_mem_used{{{head}}}) / max(ray_node_cgroup_mem_total{{{head}}}) * 100 "
               f"> {p.head_memory_percent}",
               p.head_memory_minutes, "warning",
               f"Ray head of {c} uses more than {p.head_memory_percent}% of its memory limit: an OOM kill takes "
               f"the whole cluster down", "rayheadmemoryhigh"),
        _alert("RayHeadRestarted",
               f'increase(kube_pod_container_status_restarts_total{{namespace="{ns}", pod=~"{head_pod_regex(c)}", '
               f'container="{p.head_container}"}}[15m]) > 0',
               0, "critical", f"The Ray head of {c} restarted (GCS and the dashboard with it): running jobs failed",
               "rayheadrestarted"),
        _alert("RayWorkerPodsPending",
               f'max by (namespace, pod) (kube_pod_status_phase{{{workers}, phase="Pending"}}) == 1',
               p.worker_pending_minutes, "warning",
               f"A Ray worker pod of {c} has been Pending for {p.worker_pending_minutes} minutes: no node has room "
               f"and none is being added", "rayworkerpodspending"),
        _alert("RayPodNotStarting",
               f'max by (namespace, pod) (kube_pod_init_container_status_waiting_reason{{{ray_pods}, '
               f'reason=~"ContainerCreating|PodInitializing"}} or kube_pod_container_status_waiting_reason'
               f'{{{ray_pods}, reason=~"ContainerCreating|PodInitializing"}}) == 1',
               p.pod_start_minutes, "warning",
               f"A Ray pod of {c} has not started for {p.pod_start_minutes} minutes (volume mount, often FSx, or "
               f"image pull)", "raypodnotstarting"),
    ]
    if p.gpu_metrics:
        rules.append(_alert(
            "RayGpusIdle",
            f'DCGM_FI_DEV_GPU_UTIL{{exported_namespace="{ns}", exported_pod=~"{c}-.+"}} < {p.gpu_idle_percent}',
            p.gpu_idle_minutes, "info",
            f"A GPU held by a Ray pod of {c} has been under {p.gpu_idle_percent}% busy for {p.gpu_idle_minutes} "
            f"minutes: paid for, not used", "raygpusidle"))
    if p.gpu_daemonsets:
        names = "|".join(sorted(n for _, n in p.gpu_daemonsets))
        namespaces = "|".join(sorted({n for n, _ in p.gpu_daemonsets}))
        sel = f'namespace=~"{namespaces}", daemonset=~"{names}"'
        rules.append(_alert(
            "GpuNodeAgentMissing",
            f"kube_daemonset_status_desired_number_scheduled{{{sel}}} - "
            f"kube_daemonset_status_number_available{{{sel}}} > 0",
            10, "warning", "A GPU node has no running {{ $labels.daemonset }}: without the device plugin its GPUs "
                           "are not schedulable, without the DCGM exporter they are not measured",
            "gpunodeagentmissing"))
    return [{"name": f"ray-eks.{c}", "rules": rules}]


def prometheus_rule(p: AlertProps, labels: dict[str, str]) -> dict:
    """The PrometheusRule (monitoring.coreos.com/v1), in the Ray namespace; ``labels``: what the Prometheus'
    ruleSelector selects (kube-prometheus-stack's default: release=<its release>)."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": f"{p.cluster_name}-alerts", "namespace": p.namespace, "labels": dict(labels)},
            "spec": {"groups": rule_groups(p)}}
