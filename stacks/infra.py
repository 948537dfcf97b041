"""The infra stack: the AWS footprint of Ray on EKS, using only the AWS provider.

Its outputs are the interface the ray stacks (and operators) read, through remote state.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cdktf import Fn, TerraformOutput
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from constructs import Construct

from config import AppConfig
from config.versions import CODEBUILD_IMAGE
from constructs_lib.api_tunnel import ApiTunnel, ApiTunnelProps
from constructs_lib.ecr import EcrRepositoryProps, RayImageRepository
from constructs_lib.eks_addons import EksAddons, EksAddonsProps
from constructs_lib.eks_cluster import EksClusterProps, RayEksCluster
from constructs_lib.fsx_lustre import FsxLustre, FsxLustreProps
from constructs_lib.image_build import (
    ImageBuildProps,
    PullThroughCacheProps,
    RayImageBuild,
    content_hash,
    context_archive,
    image_tag,
)
from constructs_lib.karpenter import INTERRUPTION_EVENTS, KarpenterAws, KarpenterAwsProps
from constructs_lib.kms import KmsKeys, KmsKeysProps
from constructs_lib.network import Network, NetworkProps
from constructs_lib.node_groups import NodeGroup, NodeGroupProps, TaintProps
from constructs_lib.s3_bucket import SecureBucket, SecureBucketProps
from conventions import karpenter, naming
from conventions.api_access import TUNNEL_KUBECONFIG_COMMAND

from .addresses import ReadableStack
from .common import aws_provider, configure_backend, deployment_identity, emulator_environment
from .contract import INFRA_OUTPUTS, INFRA_STACK, KARPENTER_INFRA_OUTPUTS, image_context_files
from .migrations import add_moved_blocks


class InfraStack(ReadableStack):
    def __init__(self, scope: Construct, cfg: AppConfig) -> None:
        super().__init__(scope, INFRA_STACK)
        configure_backend(self, cfg, INFRA_STACK)
        aws_provider(self, cfg)
        account = DataAwsCallerIdentity(self, "current")
        partition = DataAwsPartition(self, "current_partition").partition

        name = cfg.name
        # The log groups the data key encrypts: the control plane's, the flow logs', FSx's, the image build's.
        log_groups = (naming.cluster_log_group(name), naming.vpc_flow_logs_log_group(name), naming.fsx_log_group(name),
                      *([naming.image_build_log_group(name)] if cfg.ray.image.source == "build" else []))
        keys = KmsKeys(self, "kms", KmsKeysProps(
            name=name, eks_alias=naming.kms_alias(name, "eks"), data_alias=naming.kms_alias(name, "data"),
            region=cfg.region, account_id=account.account_id, partition=partition, log_group_names=log_groups))
        net_cfg, c = cfg.network, cfg.cluster
        existing = net_cfg.existing
        network = Network(self, "network", NetworkProps(
            name=name, cluster_name=naming.cluster_name(name), region=cfg.region, vpc_cidr=net_cfg.vpc_cidr,
            private_subnet_cidrs=net_cfg.private_cidrs(), public_subnet_cidrs=net_cfg.public_cidrs(),
            availability_zones=list(net_cfg.availability_zones), single_nat_gateway=net_cfg.single_nat_gateway,
            flow_log_retention_days=net_cfg.flow_log_retention_days,
            flow_log_group_name=naming.vpc_flow_logs_log_group(name),
            flow_log_role_name_prefix=naming.iam_role_name_prefix(name, naming.VPC_FLOW_LOGS_ROLE),
            logs_kms_key_arn=keys.data_key_arn, account_id=account.account_id, partition=partition,
            existing_vpc_id=existing.vpc_id if existing else None,
            existing_private_subnet_ids=list(existing.private_subnet_ids) if existing else [],
            existing_public_subnet_ids=list(existing.public_subnet_ids) if existing else [],
            private_subnet_tags=({karpenter.DISCOVERY_TAG: naming.cluster_name(name)} if c.autoscaler == "karpenter"
                                 else {}),
        ))

        eks = RayEksCluster(self, "eks", EksClusterProps(
            name=naming.cluster_name(name), role_name_prefix=naming.iam_role_name_prefix(name, naming.CLUSTER_ROLE),
            log_group_name=naming.cluster_log_group(name),
            kubernetes_version=c.kubernetes_version, subnet_ids=network.private_subnet_ids,
            secrets_kms_key_arn=keys.eks_key_arn, logs_kms_key_arn=keys.data_key_arn, partition=partition,
            public_access_cidrs=list(c.public_access_cidrs), private_access_cidrs=list(c.private_access_cidrs),
            admin_principal_arns=list(c.admin_principal_arns),
            creator_is_admin=c.creator_is_admin, caller_arn=account.arn,
            log_types=list(c.log_types), log_retention_days=c.log_retention_days,
            account_id=account.account_id, region=cfg.region,
        ))

        # Add-ons in terraform-aws-eks's order: networking first, node groups wait for it, the rest after them.
        addons = EksAddons(self, "addons", EksAddonsProps(
            cluster_name=eks.name, kubernetes_version=c.kubernetes_version, oidc_provider_arn=eks.oidc_provider_arn,
            oidc_issuer_host=eks.oidc_issuer_host,
            fsx_csi_role_name_prefix=naming.iam_role_name_prefix(name, naming.FSX_CSI_DRIVER_ROLE),
            versions=dict(c.addon_versions),
            vpc_cni_role_name_prefix=naming.iam_role_name_prefix(name, naming.VPC_CNI_ROLE), partition=partition,
        ))
        tags = cfg.deployment_tags
        groups = {}
        for g in c.managed_node_groups:
            groups[g.name] = NodeGroup(self, f"node_group_{g.name}", NodeGroupProps(
                cluster_name=eks.name, kubernetes_version=eks.cluster.version, name=g.name,
                role_name_prefix=naming.iam_role_name_prefix(name, naming.node_role_purpose(g.name)),
                launch_template_name_prefix=naming.launch_template_name_prefix(name, g.name),
                node_group_name_prefix=naming.node_group_name_prefix(g.name),
                subnet_ids=network.private_subnet_ids,
                instance_types=list(g.instance_types), ami_type=g.eks_ami_type, capacity_type=g.capacity_type,
                min_size=g.min_size, desired_size=g.desired_size, max_size=g.max_size, disk_size_gib=g.disk_size_gib,
                labels=g.kubernetes_labels,
                taints=[TaintProps(key=t.key, value=t.value, effect=t.effect) for t in g.kubernetes_taints],
                partition=partition, tags=tags, depends_on=addons.before_compute, ssm_access=c.node_ssm_access,
            ))
        addons.after_compute([g.node_group for g in groups.values()])
        tunnel_id = ""
        if c.endpoint_access == "tunnel":
            tunnel_id = ApiTunnel(self, "api_tunnel", ApiTunnelProps(
                name=name, region=cfg.region, partition=partition, vpc_id=network.vpc_id,
                vpc_cidr=None if existing else net_cfg.vpc_cidr, subnet_id=network.private_subnet_ids[0],
                cluster_security_group_id=eks.cluster_security_group_id,
                role_name_prefix=naming.iam_role_name_prefix(name, naming.API_TUNNEL_ROLE),
                security_group_name_prefix=naming.security_group_name_prefix(name, naming.API_TUNNEL_ROLE),
                endpoints_security_group_name_prefix=naming.security_group_name_prefix(name, "ssm-endpoints"),
            )).instance_id
        pools = self._karpenter(cfg, eks, account.account_id, partition) if c.autoscaler == "karpenter" else None

        protect = cfg.protection.prevent_destroy
        logs_bucket = SecureBucket(self, "access_logs", SecureBucketProps(
            bucket_prefix=naming.access_logs_bucket_prefix(name), prevent_destroy=protect,
            account_id=account.account_id))
        data_bucket = SecureBucket(self, "data", SecureBucketProps(
            bucket_prefix=naming.data_bucket_prefix(name), access_log_bucket=logs_bucket.bucket_name,
            access_log_policy=logs_bucket.policy, access_log_prefix="data/", prevent_destroy=protect))
        f = cfg.fsx
        fsx = FsxLustre(self, "fsx", FsxLustreProps(
            name=name, security_group_name_prefix=naming.security_group_name_prefix(name, "fsx"),
            log_group_name=naming.fsx_log_group(name),
            vpc_id=network.vpc_id, subnet_id=network.private_subnet_ids[0],
            client_security_group_id=eks.cluster_security_group_id, data_bucket_name=data_bucket.bucket_name,
            deployment_type=f.deployment_type, storage_capacity_gib=f.storage_capacity_gib,
            per_unit_storage_throughput=f.throughput, kms_key_arn=keys.data_key_arn,
            persistent=f.is_persistent, data_repository=f.data_repository,
            import_prefix=f.import_prefix, export_prefix=f.export_prefix,
            backup_retention_days=f.backup_retention_days, final_backup=f.final_backup,
            log_retention_days=c.log_retention_days, prevent_destroy=protect,
        ))
        ecr = RayImageRepository(self, "ecr", EcrRepositoryProps(
            name=cfg.ecr.repository_name or naming.ecr_repository_name(name), kms_key_arn=keys.data_key_arn,
            keep_last_images=cfg.ecr.keep_last_images, prevent_destroy=protect))
        if cfg.ray.image.source == "build":
            ray_image = self._image_build(cfg, keys, data_bucket, ecr, account.account_id, partition).image_uri
        else:
            ray_image = cfg.ray_image()

        outputs = {
            "deployment": (deployment_identity(cfg), "The deployment this state belongs to (name and region)"),
            "region": (cfg.region, "AWS region of the deployment"),
            "cluster_name": (eks.name, "EKS cluster name"),
            "cluster_endpoint": (eks.endpoint, "Kubernetes API endpoint"),
            "cluster_certificate_authority_data": (eks.certificate_authority_data, "Base64 cluster CA certificate"),
            "cluster_version": (eks.cluster.version, "Kubernetes version"),
            "cluster_oidc_issuer_url": (eks.oidc_issuer_url, "OIDC issuer URL (IRSA)"),
            "oidc_provider_arn": (eks.oidc_provider_arn, "IAM OIDC provider ARN (IRSA)"),
            "cluster_security_group_id": (eks.cluster_security_group_id, "Security group EKS attaches to every node"),
            "node_role_arns": ({n: g.role_arn for n, g in groups.items()}, "Node IAM role ARN per node group"),
            "node_group_names": ({n: g.node_group.node_group_name for n, g in groups.items()},
                                 "EKS node group name per config group"),
            "fsx_file_system_id": (fsx.file_system_id, "FSx for Lustre file system id"),
            "fsx_dns_name": (fsx.dns_name, "FSx for Lustre DNS name"),
            "fsx_mount_name": (fsx.mount_name, "FSx for Lustre mount name"),
            "ecr_repository_url": (ecr.repository_url, "ECR repository URL for the custom Ray image"),
            "ecr_repository_arn": (ecr.repository_arn, "ECR repository ARN"),
            "data_bucket_name": (data_bucket.bucket_name, "S3 data/artifacts bucket (FSx data repository)"),
            "data_bucket_arn": (data_bucket.bucket_arn, "S3 data/artifacts bucket ARN"),
            "access_logs_bucket_name": (logs_bucket.bucket_name, "S3 server access log bucket"),
            "vpc_id": (network.vpc_id, "VPC id"),
            "private_subnet_ids": (network.private_subnet_ids, "Private subnet ids (nodes, FSx)"),
            "public_subnet_ids": (network.public_subnet_ids, "Public subnet ids (NAT, load balancers)"),
            "update_kubeconfig_command": (
                (TUNNEL_KUBECONFIG_COMMAND, "Configure kubectl for the cluster, through the API tunnel (run in this "
                                            "repository; `make tunnel` opens the tunnel)")
                if c.endpoint_access == "tunnel" else
                (Fn.format("aws eks update-kubeconfig --region %s --name %s", [cfg.region, eks.name]),
                 "Configure kubectl for the cluster")),
            "ray_image": (ray_image, "Image of the Ray head and workers (ray.image.source build: the image the deploy "
                                     "built and pushed, set once the build succeeded)"),
            "endpoint_access": (c.endpoint_access,
                                "How the deployer reaches the Kubernetes API (cluster.endpoint_access)"),
            "api_tunnel_instance_id": (tunnel_id, "The SSM target of `make tunnel` (endpoint_access tunnel; empty "
                                                  "otherwise)"),
        }
        if pools is not None:
            outputs.update({
                "karpenter_controller_role_arn": (pools.controller_role_arn, "Karpenter controller's IAM role (IRSA)"),
                "karpenter_node_role_arn": (pools.node_role_arn, "IAM role of the nodes Karpenter launches"),
                "karpenter_node_instance_profile": (pools.instance_profile_name,
                                                    "Instance profile the EC2NodeClasses name"),
                "karpenter_interruption_queue": (pools.queue_name, "SQS queue of Spot, rebalance, health and state "
                                                                   "events Karpenter drains nodes on"),
            })
        expected = INFRA_OUTPUTS + (KARPENTER_INFRA_OUTPUTS if pools is not None else ())
        assert tuple(outputs) == expected, "keep INFRA_OUTPUTS (and KARPENTER_INFRA_OUTPUTS) in step with the outputs"
        for name, (value, description) in outputs.items():
            TerraformOutput(self, name, value=value, description=description)

        add_moved_blocks(self, INFRA_STACK)

    def _karpenter(self, cfg: AppConfig, eks: RayEksCluster, account_id: str, partition: str) -> KarpenterAws:
        name, existing = cfg.name, cfg.network.existing
        return KarpenterAws(self, "karpenter", KarpenterAwsProps(
            cluster_name=eks.name, region=cfg.region, account_id=account_id, partition=partition,
            oidc_provider_arn=eks.oidc_provider_arn, oidc_issuer_host=eks.oidc_issuer_host,
            controller_role_name_prefix=naming.iam_role_name_prefix(name, naming.KARPENTER_CONTROLLER_ROLE),
            node_role_name_prefix=naming.iam_role_name_prefix(name, naming.KARPENTER_NODE_ROLE),
            instance_profile_name_prefix=naming.instance_profile_name_prefix(name, naming.KARPENTER_NODE_ROLE),
            queue_name=naming.karpenter_interruption_queue(name),
            rule_names={e: naming.karpenter_event_rule(name, e) for e in INTERRUPTION_EVENTS},
            cluster_security_group_id=eks.cluster_security_group_id,
            tag_subnet_ids=list(existing.private_subnet_ids) if existing else [],
            depends_on=[eks.cluster], ssm_access=cfg.cluster.node_ssm_access))

    def _image_build(self, cfg: AppConfig, keys: KmsKeys, bucket: SecureBucket, ecr: RayImageRepository,
                     account_id: str, partition: str) -> RayImageBuild:
        image = cfg.ray.image
        files = image_context_files()
        # The base by digest when one is recorded: the content hash, and so the tag, follow a new digest.
        base = cfg.pinned_stock_ray_image
        digest = content_hash(files, base)
        cache = None
        if image.docker_hub_secret_arn:
            cache = PullThroughCacheProps(prefix=naming.docker_hub_cache_prefix(cfg.name),
                                          secret_arn=image.docker_hub_secret_arn)
        return RayImageBuild(self, "image_build", ImageBuildProps(
            project_name=naming.image_build_project(cfg.name),
            role_name_prefix=naming.iam_role_name_prefix(cfg.name, naming.IMAGE_BUILD_ROLE),
            log_group_name=naming.image_build_log_group(cfg.name), region=cfg.region, account_id=account_id,
            partition=partition, repository_url=ecr.repository_url, repository_arn=ecr.repository_arn,
            repository_name=ecr.repository_name, bucket_name=bucket.bucket_name, bucket_arn=bucket.bucket_arn,
            bucket_ready=[bucket.versioning, bucket.policy],
            source_key=naming.IMAGE_BUILD_CONTEXT_KEY, source_prefix=naming.IMAGE_BUILD_S3_PREFIX,
            context_path=str(_stage_context(context_archive(files), digest)), content_hash=digest,
            image_tag=image_tag(cfg.ray.ray_version, digest), base_image=base,
            script_path=str(BUILD_SCRIPT), compute_type=image.build_compute_type,
            timeout_minutes=image.build_timeout_minutes, codebuild_image=CODEBUILD_IMAGE,
            logs_kms_key_arn=keys.data_key_arn, log_retention_days=cfg.cluster.log_retention_days,
            pull_through_cache=cache, script_environment=emulator_environment(cfg)))


BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_image.sh"


def _stage_context(archive: bytes, digest: str) -> Path:
    """Write the context zip where the asset copies it from at synth: content-addressed, written atomically, so
    concurrent synths and reruns share it."""
    path = Path(tempfile.gettempdir()) / "ray-eks-image-build" / digest / "context.zip"
    if not (path.is_file() and path.read_bytes() == archive):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".context-")
        with os.fdopen(fd, "wb") as f:
            f.write(archive)
        os.replace(tmp, path)
    return path
