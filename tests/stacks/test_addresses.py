"""Resource addresses are an interface for ops teams: this pins every one, for every stack.

Changing this list must be deliberate: a renamed address needs a `moved` block in stacks/migrations.py
(see docs/deploy.md "Resource addresses and migrations"), otherwise Terraform destroys and recreates it.
"""

from __future__ import annotations

import re

import pytest

from tests.helpers import addresses

EXPECTED = {
    "infra": [
        "aws_cloudwatch_log_group.cluster_logs",
        "aws_cloudwatch_log_group.fsx_logs",
        "aws_cloudwatch_log_group.image_build",
        "aws_cloudwatch_log_group.vpc_flow_logs",
        "aws_codebuild_project.ray_image",
        "aws_default_security_group.default",
        "aws_ecr_lifecycle_policy.ray_lifecycle",
        "aws_ecr_repository.ray",
        "aws_eip.nat_0",
        "aws_eip.nat_1",
        "aws_eip.nat_2",
        "aws_eks_access_entry.cluster_creator",
        "aws_eks_access_policy_association.cluster_creator_admin",
        "aws_eks_addon.aws_fsx_csi_driver",
        "aws_eks_addon.coredns",
        "aws_eks_addon.eks_pod_identity_agent",
        "aws_eks_addon.kube_proxy",
        "aws_eks_addon.vpc_cni",
        "aws_eks_cluster.ray",
        "aws_eks_node_group.core",
        "aws_eks_node_group.gpu",
        "aws_flow_log.vpc",
        "aws_fsx_data_repository_association.export",
        "aws_fsx_data_repository_association.import",
        "aws_fsx_lustre_file_system.ray",
        "aws_iam_instance_profile.api_tunnel",
        "aws_iam_openid_connect_provider.eks",
        "aws_iam_role.api_tunnel",
        "aws_iam_role.cluster",
        "aws_iam_role.fsx_csi_driver",
        "aws_iam_role.image_build",
        "aws_iam_role.node_core",
        "aws_iam_role.node_gpu",
        "aws_iam_role.vpc_cni",
        "aws_iam_role.vpc_flow_logs_role",
        "aws_iam_role_policy.fsx_csi_driver_policy",
        "aws_iam_role_policy.image_build",
        "aws_iam_role_policy.vpc_flow_logs_policy",
        "aws_iam_role_policy_attachment.api_tunnel_ssm",
        "aws_iam_role_policy_attachment.cluster_policy",
        "aws_iam_role_policy_attachment.node_core_ecr_pull",
        "aws_iam_role_policy_attachment.node_core_worker",
        "aws_iam_role_policy_attachment.node_gpu_ecr_pull",
        "aws_iam_role_policy_attachment.node_gpu_worker",
        "aws_iam_role_policy_attachment.vpc_cni",
        "aws_instance.api_tunnel",
        "aws_internet_gateway.ray",
        "aws_kms_alias.data_alias",
        "aws_kms_alias.eks_alias",
        "aws_kms_key.data",
        "aws_kms_key.eks",
        "aws_launch_template.core",
        "aws_launch_template.gpu",
        "aws_nat_gateway.nat_0",
        "aws_nat_gateway.nat_1",
        "aws_nat_gateway.nat_2",
        "aws_route.private_0_nat",
        "aws_route.private_1_nat",
        "aws_route.private_2_nat",
        "aws_route.public_internet",
        "aws_route_table.private_0",
        "aws_route_table.private_1",
        "aws_route_table.private_2",
        "aws_route_table.public",
        "aws_route_table_association.private_0",
        "aws_route_table_association.private_1",
        "aws_route_table_association.private_2",
        "aws_route_table_association.public_0",
        "aws_route_table_association.public_1",
        "aws_route_table_association.public_2",
        "aws_s3_bucket.access_logs",
        "aws_s3_bucket.data",
        "aws_s3_bucket_lifecycle_configuration.access_logs",
        "aws_s3_bucket_lifecycle_configuration.data",
        "aws_s3_bucket_logging.data",
        "aws_s3_bucket_ownership_controls.access_logs",
        "aws_s3_bucket_ownership_controls.data",
        "aws_s3_bucket_policy.access_logs",
        "aws_s3_bucket_policy.data",
        "aws_s3_bucket_public_access_block.access_logs",
        "aws_s3_bucket_public_access_block.data",
        "aws_s3_bucket_server_side_encryption_configuration.access_logs",
        "aws_s3_bucket_server_side_encryption_configuration.data",
        "aws_s3_bucket_versioning.access_logs",
        "aws_s3_bucket_versioning.data",
        "aws_s3_object.image_build_context",
        "aws_security_group.api_tunnel",
        "aws_security_group.fsx",
        "aws_security_group.ssm_endpoints",
        "aws_subnet.private_0",
        "aws_subnet.private_1",
        "aws_subnet.private_2",
        "aws_subnet.public_0",
        "aws_subnet.public_1",
        "aws_subnet.public_2",
        "aws_vpc.ray",
        "aws_vpc_endpoint.ec2messages",
        "aws_vpc_endpoint.s3",
        "aws_vpc_endpoint.ssm",
        "aws_vpc_endpoint.ssmmessages",
        "aws_vpc_security_group_egress_rule.api_tunnel_to_cluster_api",
        "aws_vpc_security_group_egress_rule.api_tunnel_to_ssm",
        "aws_vpc_security_group_egress_rule.fsx_lustre_1018_1023_to_cluster",
        "aws_vpc_security_group_egress_rule.fsx_lustre_1018_1023_to_self",
        "aws_vpc_security_group_egress_rule.fsx_lustre_988_to_cluster",
        "aws_vpc_security_group_egress_rule.fsx_lustre_988_to_self",
        "aws_vpc_security_group_ingress_rule.cluster_api_from_api_tunnel",
        "aws_vpc_security_group_ingress_rule.cluster_lustre_1018_1023_from_fsx",
        "aws_vpc_security_group_ingress_rule.cluster_lustre_988_from_fsx",
        "aws_vpc_security_group_ingress_rule.fsx_lustre_1018_1023_from_cluster",
        "aws_vpc_security_group_ingress_rule.fsx_lustre_1018_1023_from_self",
        "aws_vpc_security_group_ingress_rule.fsx_lustre_988_from_cluster",
        "aws_vpc_security_group_ingress_rule.fsx_lustre_988_from_self",
        "aws_vpc_security_group_ingress_rule.ssm_endpoints_from_vpc",
        "data.aws_availability_zones.available",
        "data.aws_caller_identity.current",
        "data.aws_eks_addon_version.aws_fsx_csi_driver",
        "data.aws_eks_addon_version.coredns",
        "data.aws_eks_addon_version.eks_pod_identity_agent",
        "data.aws_eks_addon_version.kube_proxy",
        "data.aws_eks_addon_version.vpc_cni",
        "data.aws_iam_session_context.current",
        "data.aws_partition.current_partition",
        "data.aws_ssm_parameter.api_tunnel_ami",
        "terraform_data.ray_image_build",
    ],
    "ray": [
        "aws_cloudwatch_log_group.ray_orchestrator",
        "aws_cloudwatch_log_group.ray_orchestrator_lambda",
        "aws_eks_access_entry.ray_orchestrator",
        "aws_iam_role.cluster_autoscaler",
        "aws_iam_role.ray_orchestrator",
        "aws_iam_role.ray_orchestrator_lambda",
        "aws_iam_role.ray_workload",
        "aws_iam_role_policy.cluster_autoscaler",
        "aws_iam_role_policy.ray_orchestrator",
        "aws_iam_role_policy.ray_orchestrator_lambda",
        "aws_iam_role_policy.ray_workload",
        "aws_kms_alias.ray_orchestrator",
        "aws_kms_key.ray_orchestrator",
        "aws_lambda_function.ray_orchestrator",
        "aws_lambda_permission.ray_orchestrator",
        "aws_security_group.ray_orchestrator_lambda",
        "aws_sfn_state_machine.ray_orchestrator",
        "aws_vpc_security_group_egress_rule.ray_orchestrator_lambda_to_cluster_api",
        "aws_vpc_security_group_ingress_rule.cluster_api_from_ray_orchestrator_lambda",
        "data.aws_caller_identity.current",
        "data.aws_partition.current_partition",
        "data.terraform_remote_state.infra",
        "helm_release.cluster_autoscaler",
        "helm_release.kuberay_operator",
        "helm_release.nvidia_device_plugin",
        "kubernetes_config_map_v1.ray_orchestrator_scripts",
        "kubernetes_namespace_v1.kuberay_operator",
        "kubernetes_namespace_v1.ray",
        "kubernetes_persistent_volume_claim_v1.fsx",
        "kubernetes_persistent_volume_v1.fsx",
        "kubernetes_role_binding_v1.ray_orchestrator",
        "kubernetes_role_v1.ray_orchestrator",
        "kubernetes_service_account_v1.ray_head",
        "kubernetes_service_account_v1.ray_worker",
    ],
    "ray-cluster": [
        "data.terraform_remote_state.infra",
        "kubernetes_manifest.ray_cluster",
        "kubernetes_network_policy_v1.ray_head",
        "kubernetes_pod_disruption_budget_v1.ray_head",
    ],

}


@pytest.mark.parametrize("stack", sorted(EXPECTED))
def test_addresses_are_pinned(default_synth, stack):
    assert addresses(default_synth[stack]) == sorted(EXPECTED[stack])


@pytest.mark.parametrize("stack", sorted(EXPECTED))
def test_no_construct_path_hashes(default_synth, dev_synth, stack):
    for stacks in (default_synth, dev_synth):
        hashed = [a for a in addresses(stacks[stack]) if re.search(r"_[0-9A-F]{8}$", a)]
        assert not hashed, hashed


def test_two_elements_with_one_address_fail_the_synth(tmp_path):
    """Addresses are construct ids: two resources of one type with the same id in different scopes would merge
    silently in the JSON, so the stack refuses them (and names both construct paths)."""
    from cdktf import App, TerraformResource
    from constructs import Construct

    from stacks.addresses import ReadableStack

    app = App(outdir=str(tmp_path))
    stack = ReadableStack(app, "clash")
    TerraformResource(Construct(stack, "first"), "same", terraform_resource_type="terraform_data")
    TerraformResource(Construct(stack, "second"), "same", terraform_resource_type="terraform_data")
    clash = r"terraform_data\.same is declared twice \(clash/first/same and clash/second/same\)"
    with pytest.raises(Exception, match=clash):
        app.synth()


def test_the_same_id_under_two_types_is_fine(tmp_path):
    from cdktf import App, TerraformResource
    from constructs import Construct

    from stacks.addresses import ReadableStack

    app = App(outdir=str(tmp_path))
    stack = ReadableStack(app, "noclash")
    TerraformResource(Construct(stack, "a"), "same", terraform_resource_type="terraform_data")
    TerraformResource(Construct(stack, "b"), "same", terraform_resource_type="null_resource")
    app.synth()
    doc = (tmp_path / "stacks" / "noclash" / "cdk.tf.json").read_text()
    assert '"terraform_data"' in doc and '"null_resource"' in doc
