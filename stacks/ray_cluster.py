"""The ray-cluster stack: the autoscaling RayCluster, and the job-submission commands.

A separate stack so that its plan runs after the ray stack's operator installed the CRDs: one
`cdktf deploy infra ray ray-cluster` then works on a fresh cluster (a kubernetes_manifest in the
operator's own apply fails at plan time: the CRD does not exist yet).
"""

from __future__ import annotations

from cdktf import TerraformOutput, TerraformStack
from constructs import Construct

from config import AppConfig
from config.models import NodeGroupConfig
from config.versions import KARPENTER_AMI_RELEASE
from constructs_lib.dcgm_exporter import DCGM_NAMESPACE, DCGM_RELEASE
from constructs_lib.karpenter import KarpenterNodePools
from constructs_lib.manifests.karpenter import NodePoolProps
from constructs_lib.manifests.network_policy import HeadNetworkPolicyProps
from constructs_lib.manifests.ray_cluster import HEAD_CONTAINER, RayClusterProps, WorkerGroupProps
from constructs_lib.observability import (
    HEAD_METRICS_PORTS,
    MONITOR_LABELS,
    RayAlerts,
    RayAlertsProps,
    RayMonitors,
    RayMonitorsProps,
    prometheus_peer,
    ray_head_env,
    scrape_annotations,
)
from constructs_lib.ray_cluster import RayClusterManifest, RayHeadDisruptionBudget, RayHeadNetworkPolicy
from conventions.commands import job_submit_command, port_forward_command, token_command, token_export_command
from conventions.karpenter import CAPACITY_TYPES
from conventions.kubernetes import GPU_RESOURCE, TAINT_EFFECTS, mebibytes_quantity
from conventions.ray import HEAD_PORTS, LOCAL_DASHBOARD_URL, worker_termination_grace_seconds
from observability.alerts import AlertProps, prometheus_rule

from .addresses import ReadableStack
from .common import configure_backend, deployment_output, ray_pod_image, remote_state
from .contract import (
    FSX_CLAIM,
    INFRA_STACK,
    KUBERAY_OPERATOR_POD_LABELS,
    RAY_CLUSTER_STACK,
    RAY_HEAD_SERVICE_ACCOUNT,
    RAY_WORKER_SERVICE_ACCOUNT,
    TRAINING_SCRIPT,
    job_pip,
)
from .kube import kubernetes_providers
from .migrations import add_moved_blocks


def ray_cluster_props(cfg: AppConfig, image: str) -> RayClusterProps:
    obs = cfg.observability
    return RayClusterProps(
        head_env=(ray_head_env(obs.monitoring_namespace, obs.grafana_iframe_host, cfg.ray.cluster_name)
                  if obs.kube_prometheus_stack else {}),
        pod_annotations=scrape_annotations() if obs.scrape_mode == "annotations" else {},
        # A PodMonitor also scrapes the head's autoscaler and dashboard metrics, by these port names.
        head_extra_ports=dict(HEAD_METRICS_PORTS) if obs.scrape_mode == "monitors" else {},
        name=cfg.ray.cluster_name, namespace=cfg.ray.namespace, ray_version=cfg.ray.ray_version,
        image=image, head_service_account=RAY_HEAD_SERVICE_ACCOUNT,
        worker_service_account=RAY_WORKER_SERVICE_ACCOUNT, pvc_name=FSX_CLAIM,
        head_cpu=cfg.ray.head.cpu, head_memory=cfg.ray.head.memory, idle_timeout_seconds=cfg.ray.idle_timeout_seconds,
        worker_drain_seconds=cfg.ray.worker_drain_seconds, upgrade_strategy=cfg.ray.upgrade_strategy,
        worker_groups=[WorkerGroupProps(
            name=w.name, node_group=w.node_group, min_replicas=w.min_replicas,
            max_replicas=w.max_replicas, cpu=w.cpu, memory=w.memory, gpus=w.gpus) for w in cfg.ray.worker_groups],
    )


def node_pool_props(cfg: AppConfig, group: NodeGroupConfig, cluster_name: str, instance_profile: str) -> NodePoolProps:
    """A gpu/cpu node group as a Karpenter NodePool: the labels and taints its managed group's nodes would carry."""
    limits = group.pool_limits()
    return NodePoolProps(
        name=group.name, labels=group.kubernetes_labels,
        taints=[{"key": t.key, **({"value": t.value} if t.value else {}), "effect": TAINT_EFFECTS[t.effect]}
                for t in group.kubernetes_taints],
        instance_types=list(group.instance_types), capacity_types=CAPACITY_TYPES[group.capacity_type],
        limits={"cpu": str(limits["cpu"]), "memory": mebibytes_quantity(limits["memory_mib"]),
                **({GPU_RESOURCE: str(limits["gpus"])} if limits["gpus"] else {})},
        disk_size_gib=group.disk_size_gib, cluster_name=cluster_name, instance_profile=instance_profile,
        ami_release=KARPENTER_AMI_RELEASE, tags=cfg.deployment_tags,
        worker_grace_seconds=worker_termination_grace_seconds(cfg.ray.worker_drain_seconds))


def head_network_policy_props(cfg: AppConfig) -> HeadNetworkPolicyProps:
    obs = cfg.observability
    if obs.scrape_mode == "none":
        metrics_from = None
    elif obs.scrape_mode == "monitors" and obs.kube_prometheus_stack:
        metrics_from = [prometheus_peer(obs.monitoring_namespace)]
    else:
        metrics_from = []  # scraped by a Prometheus this deployment does not know: the metrics port stays open
    ports = (HEAD_PORTS["metrics"], *(HEAD_METRICS_PORTS.values() if obs.scrape_mode == "monitors" else ()))
    return HeadNetworkPolicyProps(cluster_name=cfg.ray.cluster_name, namespace=cfg.ray.namespace,
                                  operator_pod_labels=dict(KUBERAY_OPERATOR_POD_LABELS), metrics_from=metrics_from,
                                  operator_namespace=cfg.ray.operator_namespace,
                                  metrics_ports=ports)


def alert_props(cfg: AppConfig) -> AlertProps:
    a = cfg.observability.alerts
    gpu_daemonsets = []
    if cfg.cluster.has_gpu:
        gpu_daemonsets.append(("kube-system", "nvidia-device-plugin"))
    if cfg.observability.dcgm_exporter:
        gpu_daemonsets.append((DCGM_NAMESPACE, DCGM_RELEASE))
    return AlertProps(cluster_name=cfg.ray.cluster_name, namespace=cfg.ray.namespace, head_container=HEAD_CONTAINER,
                      head_memory_percent=a.head_memory_percent, head_memory_minutes=a.head_memory_minutes,
                      worker_pending_minutes=a.worker_pending_minutes, pod_start_minutes=a.pod_start_minutes,
                      gpu_idle_percent=a.gpu_idle_percent, gpu_idle_minutes=a.gpu_idle_minutes,
                      gpu_daemonsets=tuple(gpu_daemonsets), gpu_metrics=cfg.observability.dcgm_exporter)


class RayClusterStack(ReadableStack):
    def __init__(self, scope: Construct, cfg: AppConfig, after: TerraformStack | None = None) -> None:
        super().__init__(scope, RAY_CLUSTER_STACK)
        configure_backend(self, cfg, RAY_CLUSTER_STACK)
        infra = remote_state(self, "infra", cfg, INFRA_STACK)
        kubernetes_providers(self, cfg, infra, helm=False)
        props = ray_cluster_props(cfg, ray_pod_image(cfg, infra))
        pools = None
        if cfg.cluster.karpenter_pools:
            # Custom kinds, like the RayCluster: their CRDs (the ray stack's karpenter-crd release) exist at plan.
            pools = KarpenterNodePools(self, "karpenter", [
                node_pool_props(cfg, g, infra.get_string("cluster_name"),
                                infra.get_string("karpenter_node_instance_profile"))
                for g in cfg.cluster.karpenter_pools])
        # After the pools: on destroy the RayCluster (its pods) goes first, so no busy Ray pod holds up the drain
        # of a pool's nodes.
        RayClusterManifest(self, "ray_cluster", props, depends_on=pools.pools if pools else ())
        RayHeadNetworkPolicy(self, "ray_head", head_network_policy_props(cfg))
        RayHeadDisruptionBudget(self, "head_disruption_budget", props)
        if cfg.observability.scrape_mode == "monitors":
            # Custom kinds need their CRDs at plan time: the ray stack's kube-prometheus-stack (or an
            # existing Prometheus Operator) installed them before this stack plans.
            RayMonitors(self, "monitors", RayMonitorsProps(cluster_name=props.name, namespace=props.namespace,
                                                               operator_namespace=cfg.ray.operator_namespace))
        if cfg.observability.kube_prometheus_stack:
            # A PrometheusRule is a custom kind too: its CRD comes with kube-prometheus-stack (ray stack).
            RayAlerts(self, "alerts", RayAlertsProps(rule=prometheus_rule(alert_props(cfg), MONITOR_LABELS)))
        if after is not None:
            self.add_dependency(after)  # cdktf deploys the operator's stack first

        deployment_output(self, cfg)
        TerraformOutput(self, "ray_cluster_name", value=props.name, description="RayCluster name")
        TerraformOutput(self, "head_service", value=props.head_service,
                        description=f"ClusterIP service of the Ray head (dashboard {HEAD_PORTS['dashboard']}, client "
                                    f"{HEAD_PORTS['client']}, GCS {HEAD_PORTS['gcs-server']})")
        TerraformOutput(self, "ray_image", value=props.image, description="Image of head and workers")
        TerraformOutput(self, "dashboard_port_forward_command",
                        value=port_forward_command(props.namespace, props.head_service),
                        description=f"Reach the Ray dashboard on {LOCAL_DASHBOARD_URL}")
        TerraformOutput(self, "ray_auth_export_command", value=token_export_command(props.namespace, props.name),
                        description="Exports RAY_AUTH_MODE and the cluster's token (RAY_AUTH_TOKEN): run it before ray "
                                    "job submit")
        TerraformOutput(self, "ray_auth_token_command", value=token_command(props.namespace, props.name),
                        description="Prints the cluster's token, which the dashboard asks for")
        TerraformOutput(self, "ray_job_submit_command",
                        value=job_submit_command(TRAINING_SCRIPT, tuple(cfg.training.args), job_pip(cfg)),
                        description="Submit the training job through the port-forward (run from the repo root, "
                                    "after ray_auth_export_command)")
        add_moved_blocks(self, RAY_CLUSTER_STACK)
