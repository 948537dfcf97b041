"""EKS managed node groups: one construct per group, each with its IAM role and a launch template
(IMDSv2 required, encrypted gp3 root volume). Cluster-autoscaler discovers the groups by tag.

The launch template tags what EKS launches from it -- instances, their volumes and network interfaces -- with
the deployment's tags: the provider's default_tags reach the template itself but not its tag_specifications
(hashicorp/terraform-provider-aws#19387), and node group tags do not propagate to instances."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable, TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.eks_node_group import (
    EksNodeGroup,
    EksNodeGroupLaunchTemplate,
    EksNodeGroupScalingConfig,
    EksNodeGroupTaint,
    EksNodeGroupUpdateConfig,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateMetadataOptions,
    LaunchTemplateTagSpecifications,
)
from constructs import Construct

from conventions.kubernetes import cluster_autoscaler_tags

from .iam import service_assume_role_policy

# The CNI's policy is not here: the vpc-cni add-on has its own IRSA role (eks_addons.py).
NODE_POLICIES = {
    "worker": "AmazonEKSWorkerNodePolicy",
    "ecr_pull": "AmazonEC2ContainerRegistryPullOnly",
}
# Session Manager on the nodes (cluster.node_ssm_access): whoever may ssm:StartSession on them is root there.
SSM_POLICY = ("ssm", "AmazonSSMManagedInstanceCore")


@dataclass(frozen=True)
class TaintProps:
    key: str
    value: str
    effect: str  # NO_SCHEDULE | NO_EXECUTE | PREFER_NO_SCHEDULE


@dataclass(frozen=True)
class NodeGroupProps:
    cluster_name: str
    # The cluster's version attribute: the groups follow a control-plane upgrade (EKS leaves a group at the version
    # it was created with until it is told otherwise), after it, rolling their nodes to the new AMI.
    kubernetes_version: str
    name: str
    role_name_prefix: str
    launch_template_name_prefix: str
    node_group_name_prefix: str
    subnet_ids: list[str]
    instance_types: list[str]
    ami_type: str
    capacity_type: str
    min_size: int
    desired_size: int
    max_size: int
    disk_size_gib: int
    labels: dict[str, str]
    taints: list[TaintProps]
    partition: str
    # The deployment's tags (the provider's default_tags): on every instance, volume and network interface.
    tags: dict[str, str]
    # What must exist before any node starts (the networking add-ons).
    depends_on: Sequence[ITerraformDependable] = ()
    ebs_kms_key_arn: str | None = None  # None: the account's default EBS key
    ssm_access: bool = False  # AmazonSSMManagedInstanceCore on the node role


class NodeGroup(Construct):
    node_group: EksNodeGroup
    role_arn: str

    def __init__(self, scope: Construct, id: str, props: NodeGroupProps) -> None:
        super().__init__(scope, id)
        n = props.name
        role = IamRole(self, f"node_{n}", name_prefix=props.role_name_prefix,
                       assume_role_policy=service_assume_role_policy("ec2.amazonaws.com"))
        attachments = [
            IamRolePolicyAttachment(self, f"node_{n}_{key}", role=role.name,
                                    policy_arn=f"arn:{props.partition}:iam::aws:policy/{policy}")
            for key, policy in [*NODE_POLICIES.items(), *([SSM_POLICY] if props.ssm_access else [])]
        ]
        # Addresses come from construct ids; a child scope lets the template and the group share the name.
        template = LaunchTemplate(
            Construct(self, "launch_template"), n,
            name_prefix=props.launch_template_name_prefix,
            description=f"EKS managed node group {n} of {props.cluster_name}",
            update_default_version=True,
            # IMDSv2 only, and one hop: pods cannot borrow the node role (they use IRSA instead).
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            block_device_mappings=[LaunchTemplateBlockDeviceMappings(
                device_name="/dev/xvda",
                ebs=LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=props.disk_size_gib, volume_type="gp3", encrypted="true",
                    kms_key_id=props.ebs_kms_key_arn, delete_on_termination="true",
                ),
            )],
            tag_specifications=[
                LaunchTemplateTagSpecifications(resource_type=t,
                                                tags={**props.tags, "Name": f"{props.cluster_name}-{n}"})
                for t in ("instance", "volume", "network-interface")
            ],
        )
        autoscaler_tags = cluster_autoscaler_tags(props.cluster_name, props.labels, props.taints)
        self.node_group = EksNodeGroup(
            self, n,
            cluster_name=props.cluster_name,
            version=props.kubernetes_version,
            node_group_name_prefix=props.node_group_name_prefix,
            node_role_arn=role.arn,
            subnet_ids=props.subnet_ids,
            ami_type=props.ami_type,
            capacity_type=props.capacity_type,
            instance_types=props.instance_types,
            scaling_config=EksNodeGroupScalingConfig(
                min_size=props.min_size, desired_size=props.desired_size, max_size=props.max_size),
            update_config=EksNodeGroupUpdateConfig(max_unavailable_percentage=33),
            launch_template=EksNodeGroupLaunchTemplate(
                id=template.id, version=Token.as_string(template.latest_version)),
            labels=props.labels,
            taint=[EksNodeGroupTaint(key=t.key, value=t.value, effect=t.effect) for t in props.taints] or None,
            tags=autoscaler_tags,
            # The cluster autoscaler owns desired_size after creation; a new name prefix lets
            # instance type changes roll over without downtime.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["scaling_config[0].desired_size"],
                                                 create_before_destroy=True),
            depends_on=[*attachments, *props.depends_on],
        )
        self.role_arn = role.arn

