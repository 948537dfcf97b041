"""The ray stack: turns the empty EKS cluster into a Ray platform.

helm + kubernetes providers (and AWS for IRSA roles). Everything about the cluster comes from the
infra stack's outputs through terraform_remote_state.
"""

from __future__ import annotations

import json

from cdktf import Fn, TerraformOutput
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from constructs import Construct

from config import AppConfig
from config.versions import CLUSTER_AUTOSCALER_IMAGE_TAGS, KARPENTER_VERSION
from constructs_lib.cluster_addons import ClusterAddons, ClusterAddonsProps
from constructs_lib.dcgm_exporter import DcgmExporter, DcgmExporterProps
from constructs_lib.karpenter import KarpenterController, KarpenterControllerProps
from constructs_lib.kuberay_operator import KubeRayOperator, KubeRayOperatorProps
from constructs_lib.manifests.storage import FsxVolumeProps
from constructs_lib.observability import (
    MONITOR_LABELS,
    GrafanaProvisioning,
    GrafanaProvisioningProps,
    ObservabilityAddons,
    ObservabilityAddonsProps,
    prometheus_peer,
    ray_head_peer,
)
from constructs_lib.orchestrator import (
    FUNCTION_MODULE,
    FunctionNetwork,
    OrchestratorNames,
    PipelineProps,
    RayOrchestrator,
    RayOrchestratorKubernetes,
    RayOrchestratorKubernetesProps,
    RayOrchestratorProps,
    function_steps_file,
    start_execution_command,
)
from constructs_lib.ray_platform import RayPlatform, RayPlatformProps
from conventions import naming
from conventions.kubernetes import CORE_ROLE, node_selector
from observability.dashboards import (
    RAY_DASHBOARDS,
    PlatformDashboardProps,
    WorkerGroup,
    gpu_dashboard,
    platform_dashboard,
    ray_dashboard,
)

from .addresses import ReadableStack
from .common import aws_provider, configure_backend, deployment_output, ray_pod_image, remote_state
from .contract import (
    FSX_CLAIM,
    INFERENCE_SCRIPT,
    INFRA_STACK,
    KUBERAY_OPERATOR_RELEASE,
    ORCHESTRATOR_FILES,
    RAY_HEAD_SERVICE_ACCOUNT,
    RAY_STACK,
    RAY_WORKER_SERVICE_ACCOUNT,
    TRAINING_SCRIPT,
    job_files,
    job_pip,
)
from .kube import kubernetes_providers
from .migrations import add_moved_blocks
from .packages import function_package


def fsx_volume_props(cfg: AppConfig, infra) -> FsxVolumeProps:
    return FsxVolumeProps(
        name=FSX_CLAIM, namespace=cfg.ray.namespace, file_system_id=infra.get_string("fsx_file_system_id"),
        dns_name=infra.get_string("fsx_dns_name"), mount_name=infra.get_string("fsx_mount_name"),
        capacity_gib=cfg.fsx.storage_capacity_gib)


def grafana_dashboards(cfg: AppConfig) -> dict[str, str]:
    """ConfigMap name suffix -> dashboard JSON: Ray's for the pinned Ray, the GPU one with the DCGM exporter, ours."""
    def dump(d: dict) -> str:
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    out = {f"ray-{name.replace('_', '-')}": dump(ray_dashboard(name)) for name in RAY_DASHBOARDS}
    if cfg.observability.dcgm_exporter:
        out["gpus"] = dump(gpu_dashboard())
    out["platform"] = dump(platform_dashboard(PlatformDashboardProps(
        cluster_name=cfg.ray.cluster_name, namespace=cfg.ray.namespace,
        worker_groups=tuple(WorkerGroup(w.name, w.gpus) for w in cfg.ray.worker_groups))))
    return out


def karpenter_replicas(cfg: AppConfig) -> int:
    """Karpenter's controller replicas: one per core node the group keeps, up to the chart's two (nothing adds a core
    node for a Pending replica: cluster-autoscaler is not installed with Karpenter)."""
    return min(2, max(cfg.cluster.core_group.min_size, 1))


def orchestrator_names(name: str) -> OrchestratorNames:
    fn = naming.orchestrator_function_name(name)
    return OrchestratorNames(
        state_machine=naming.state_machine_name(name), state_machine_log_group=naming.state_machine_log_group(name),
        state_machine_role_prefix=naming.iam_role_name_prefix(name, naming.ORCHESTRATOR_ROLE),
        function=fn, function_log_group=naming.lambda_log_group(fn),
        function_role_prefix=naming.iam_role_name_prefix(name, naming.ORCHESTRATOR_FUNCTION_ROLE),
        function_security_group_prefix=naming.security_group_name_prefix(name, naming.ORCHESTRATOR_ROLE),
        kms_alias=naming.kms_alias(name, naming.ORCHESTRATOR_ROLE))


class RayStack(ReadableStack):
    def __init__(self, scope: Construct, cfg: AppConfig) -> None:
        super().__init__(scope, RAY_STACK)
        configure_backend(self, cfg, RAY_STACK)
        aws_provider(self, cfg)
        infra = remote_state(self, "infra", cfg, INFRA_STACK)
        kubernetes_providers(self, cfg, infra)

        # The EKS cluster's name: the infra stack's output, the one source every part of this stack reads it from.
        cluster = infra.get_string("cluster_name")
        karpenter = cfg.cluster.autoscaler == "karpenter"
        oidc_arn = infra.get_string("oidc_provider_arn")
        oidc_host = Fn.replace(infra.get_string("cluster_oidc_issuer_url"), "https://", "")
        platform = RayPlatform(self, "platform", RayPlatformProps(
            namespace=cfg.ray.namespace, head_service_account=RAY_HEAD_SERVICE_ACCOUNT,
            worker_service_account=RAY_WORKER_SERVICE_ACCOUNT,
            workload_role_name_prefix=naming.iam_role_name_prefix(cfg.name, naming.RAY_WORKLOAD_ROLE),
            oidc_provider_arn=oidc_arn, oidc_issuer_host=oidc_host,
            data_bucket_arn=infra.get_string("data_bucket_arn"), fsx=fsx_volume_props(cfg, infra),
            read_only_prefixes=(naming.IMAGE_BUILD_S3_PREFIX,)))
        ClusterAddons(self, "addons", ClusterAddonsProps(
            cluster_name=cluster, region=cfg.region,
            autoscaler_role_name_prefix=naming.iam_role_name_prefix(cfg.name, naming.CLUSTER_AUTOSCALER_ROLE),
            cluster_autoscaler_image_tag=CLUSTER_AUTOSCALER_IMAGE_TAGS[cfg.cluster.kubernetes_version],
            oidc_provider_arn=oidc_arn, oidc_issuer_host=oidc_host,
            nvidia_device_plugin_version=cfg.ray.nvidia_device_plugin_chart_version,
            cluster_autoscaler_version=cfg.ray.cluster_autoscaler_chart_version,
            install_device_plugin=cfg.cluster.has_gpu, install_cluster_autoscaler=not karpenter))
        if karpenter:
            KarpenterController(self, "karpenter", KarpenterControllerProps(
                cluster_name=cluster, version=KARPENTER_VERSION,
                controller_role_arn=infra.get_string("karpenter_controller_role_arn"),
                interruption_queue=infra.get_string("karpenter_interruption_queue"),
                replicas=karpenter_replicas(cfg), node_selector=node_selector(CORE_ROLE)))
        # The Ray namespace by reference: Terraform orders the release (and its Role there) after it exists.
        operator = KubeRayOperator(self, "kuberay", KubeRayOperatorProps(
            namespace=cfg.ray.operator_namespace, watch_namespace=platform.namespace.metadata.name,
            release_name=KUBERAY_OPERATOR_RELEASE, chart_version=cfg.ray.kuberay_operator_chart_version))

        obs = cfg.observability
        addons = ObservabilityAddons(self, "observability", ObservabilityAddonsProps(
            cluster_name=cluster, oidc_provider_arn=oidc_arn, oidc_issuer_host=oidc_host,
            kube_prometheus_stack=obs.kube_prometheus_stack,
            kube_prometheus_stack_chart_version=obs.kube_prometheus_stack_chart_version,
            monitoring_namespace=obs.monitoring_namespace, container_insights=obs.container_insights,
            container_insights_addon_version=obs.container_insights_addon_version,
            container_insights_role_name_prefix=naming.iam_role_name_prefix(cfg.name, naming.CONTAINER_INSIGHTS_ROLE),
            grafana_iframe_host=obs.grafana_iframe_host, dcgm_exporter=obs.dcgm_exporter))
        if addons.namespace is not None:
            GrafanaProvisioning(self, "grafana", GrafanaProvisioningProps(
                namespace=addons.namespace.metadata.name, dashboards=grafana_dashboards(cfg),
                clients=[ray_head_peer(cfg.ray.cluster_name, cfg.ray.namespace),
                         prometheus_peer(obs.monitoring_namespace)]))
        if obs.dcgm_exporter:
            kps = addons.kube_prometheus_stack
            DcgmExporter(self, "gpu_metrics", DcgmExporterProps(
                chart_version=obs.dcgm_exporter_chart_version, service_monitor=kps is not None,
                monitor_labels=dict(MONITOR_LABELS), depends_on=[kps] if kps is not None else ()))
        if cfg.orchestrator_enabled:
            self._orchestrator(cfg, infra, cluster, platform.namespace.metadata.name)

        deployment_output(self, cfg)
        TerraformOutput(self, "namespace", value=platform.namespace.metadata.name,
                        description="Namespace of the Ray cluster and jobs")
        TerraformOutput(self, "ray_head_service_account", value=platform.head_service_account.metadata.name,
                        description="Service account of the Ray head (the Ray autoscaler's rights; IRSA: data bucket)")
        TerraformOutput(self, "ray_worker_service_account", value=platform.worker_service_account.metadata.name,
                        description="Service account of the Ray workers (no Kubernetes rights; IRSA: data bucket)")
        TerraformOutput(self, "kuberay_operator_namespace", value=operator.namespace.metadata.name,
                        description="Namespace of the KubeRay operator (it watches the Ray namespace only)")
        TerraformOutput(self, "fsx_claim_name", value=platform.pvc.metadata.name,
                        description="ReadWriteMany claim of the FSx for Lustre file system")
        TerraformOutput(self, "kuberay_operator_version", value=operator.release.version,
                        description="KubeRay operator chart version")
        add_moved_blocks(self, RAY_STACK)

    def _orchestrator(self, cfg: AppConfig, infra, cluster: str, namespace: str) -> None:
        o = cfg.orchestrator
        pipeline = PipelineProps(
            cluster_name=cluster, cluster_endpoint=infra.get_string("cluster_endpoint"),
            cluster_ca=infra.get_string("cluster_certificate_authority_data"), namespace=namespace,
            head_service=cfg.ray.head_service, ray_cluster=cfg.ray.cluster_name,
            image=ray_pod_image(cfg, infra), pip=job_pip(cfg),
            training_script=TRAINING_SCRIPT, inference_script=INFERENCE_SCRIPT,
            training_args=tuple(cfg.orchestrator_training_args), inference_args=tuple(o.inference_args),
            step_timeout_seconds=o.step_timeout_seconds, retries=o.retries)
        orchestrator = RayOrchestrator(self, "ray_orchestrator", RayOrchestratorProps(
            name=cfg.name, names=orchestrator_names(cfg.name),
            region=cfg.region, account_id=DataAwsCallerIdentity(self, "current").account_id,
            partition=DataAwsPartition(self, "current_partition").partition, pipeline=pipeline,
            # The function's code and the Jobs it may create, in one package (one source_code_hash).
            package=function_package(self, "ray_orchestrator", [FUNCTION_MODULE],
                                     dict([function_steps_file(pipeline)])),
            # The private API endpoint is reachable from the cluster's subnets only.
            network=FunctionNetwork(vpc_id=infra.get_string("vpc_id"), subnet_ids=infra.get_list("private_subnet_ids"),
                                    cluster_security_group_id=infra.get_string("cluster_security_group_id")),
            reserved_concurrency=o.reserved_concurrency,
            log_retention_days=o.log_retention_days, log_level=o.log_level))
        RayOrchestratorKubernetes(self, "ray_orchestrator_kubernetes", RayOrchestratorKubernetesProps(
            namespace=namespace, scripts=job_files(ORCHESTRATOR_FILES)))
        arn = orchestrator.state_machine.arn
        TerraformOutput(self, "state_machine_arn", value=arn,
                        description="Step Functions pipeline: training, then batch inference, on the RayCluster")
        TerraformOutput(self, "start_execution_command", value=start_execution_command(arn, cfg.region),
                        description="Start the pipeline; outputs land under /ray/export/orchestrator/<run id>")
