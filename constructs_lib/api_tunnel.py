"""The deployer's way to a private Kubernetes API: a small SSM-managed instance that Session Manager port-forwards
through (``AWS-StartPortForwardingSessionToRemoteHost``, `make tunnel`), so the API endpoint never opens to the
internet and no inbound port opens anywhere.

The instance has no key pair, no inbound rule, no public address; IMDSv2 only (hop limit 1: no container on it could
reach the metadata service); an encrypted root volume; and one role with only AWS's ``AmazonSSMManagedInstanceCore``
(what SSM Agent needs to register and open sessions). Its security group lets it out on 443 to two places:

* the cluster security group (EKS puts it on the endpoint's network interfaces), which admits 443 back from it;
* the Systems Manager endpoints SSM Agent talks to: ``ssm``, ``ssmmessages`` and ``ec2messages`` (Systems Manager
  user guide, "Reference: ec2messages, ssmmessages, and other API operations"). In a VPC the deployment creates they
  are interface endpoints in the tunnel's subnet, with private DNS, so the instance has no route to the internet at
  all: a port-forward can reach the API and nothing else. Their security group admits 443 from the whole VPC, as
  private DNS sends every client in the VPC there (the nodes too, should they run SSM Agent). In an existing VPC the
  endpoints may exist already (a second set with private DNS would fail), so none are created and the instance may
  leave on 443 anywhere: the VPC's NAT gateway or its own endpoints must carry it to SSM.

Why the endpoints sit in the tunnel's subnet only (one AZ): the instance lives in that subnet and nowhere else, so
endpoints in other AZs would serve it only when its own AZ is down, and then it is down too; each interface endpoint
costs per AZ and hour. SSM Agent on the nodes (cluster.node_ssm_access) reaches them across AZs, and loses them only
while that one AZ is out.

The AMI is the latest Amazon Linux 2023 (SSM Agent preinstalled) from AWS's public SSM parameter at the first apply;
later releases are ignored (``ignore_changes = [ami]``: a parameter that moves must not replace the instance on every
plan). Refreshing it is a deliberate replace (it holds nothing): ``python -m scripts.tf infra apply
-replace=aws_instance.api_tunnel`` (docs/deploy.md).

Addresses: ``aws_instance.api_tunnel``, ``aws_security_group.api_tunnel`` and its rules, ``aws_iam_role.api_tunnel``,
``aws_iam_instance_profile.api_tunnel``, ``data.aws_ssm_parameter.api_tunnel_ami``; with endpoints
``aws_vpc_endpoint.{ssm,ssmmessages,ec2messages}`` and ``aws_security_group.ssm_endpoints``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResource, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.instance import Instance, InstanceMetadataOptions, InstanceRootBlockDevice
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from conventions.api_access import TUNNEL_AMI_PARAMETER, TUNNEL_INSTANCE_TYPE

from .checkov import skip
from .iam import service_assume_role_policy

# What SSM Agent calls (Systems Manager user guide, "Reference: ec2messages, ssmmessages, and other API operations").
SSM_ENDPOINT_SERVICES = ("ssm", "ssmmessages", "ec2messages")
SSM_MANAGED_POLICY = "AmazonSSMManagedInstanceCore"
HTTPS = 443


@dataclass(frozen=True)
class ApiTunnelProps:
    name: str
    region: str
    partition: str
    vpc_id: str
    vpc_cidr: str | None  # the VPC's CIDR when the deployment creates it (SSM endpoints); None in an existing VPC
    subnet_id: str  # a private subnet (the instance and the endpoints)
    cluster_security_group_id: str  # on the API endpoint's network interfaces
    role_name_prefix: str
    security_group_name_prefix: str
    endpoints_security_group_name_prefix: str
    instance_type: str = TUNNEL_INSTANCE_TYPE
    ami_parameter: str = TUNNEL_AMI_PARAMETER


class ApiTunnel(Construct):
    """``instance_id``: the target of `aws ssm start-session`."""

    instance: Instance
    instance_id: str
    security_group_id: str

    def __init__(self, scope: Construct, id: str, props: ApiTunnelProps) -> None:
        super().__init__(scope, id)
        sg = SecurityGroup(Construct(self, "sg"), id, name_prefix=props.security_group_name_prefix,
                           vpc_id=props.vpc_id,
                           description=f"API tunnel of {props.name}: no inbound; HTTPS to the EKS API and SSM only",
                           tags={"Name": f"{props.name}-api-tunnel"},
                           lifecycle=TerraformResourceLifecycle(create_before_destroy=True))
        VpcSecurityGroupEgressRule(
            self, f"{id}_to_cluster_api", security_group_id=sg.id, ip_protocol="tcp", from_port=HTTPS, to_port=HTTPS,
            referenced_security_group_id=props.cluster_security_group_id,
            description="HTTPS to the EKS API endpoint (its network interfaces carry the cluster security group)")
        VpcSecurityGroupIngressRule(
            self, f"cluster_api_from_{id}", security_group_id=props.cluster_security_group_id, ip_protocol="tcp",
            from_port=HTTPS, to_port=HTTPS, referenced_security_group_id=sg.id,
            description=f"HTTPS to the EKS API from the API tunnel of {props.name} (make tunnel)")
        # What SSM Agent's first registration goes through: the endpoints and the rules to them, or the egress rule.
        ssm_path: list[TerraformResource]
        if props.vpc_cidr is not None:
            ssm_path = self._ssm_endpoints(props, sg, id)
        else:
            egress = VpcSecurityGroupEgressRule(
                self, f"{id}_to_ssm", security_group_id=sg.id, ip_protocol="tcp", from_port=HTTPS, to_port=HTTPS,
                cidr_ipv4="0.0.0.0/0",
                description="HTTPS to Systems Manager (ssm, ssmmessages, ec2messages) through the existing VPC's "
                            "NAT gateway or endpoints")
            skip(egress, "CKV_AWS_382",
                 "In an existing VPC SSM Agent reaches Systems Manager through the VPC's own NAT gateway or "
                 "endpoints, whose addresses this stack does not know; HTTPS only, and no inbound rule at all")
            ssm_path = [egress]

        role = IamRole(Construct(self, "role"), id, name_prefix=props.role_name_prefix,
                       description=f"API tunnel of {props.name}: SSM Agent only",
                       assume_role_policy=service_assume_role_policy("ec2.amazonaws.com"))
        attachment = IamRolePolicyAttachment(
            self, f"{id}_ssm", role=role.name,
            policy_arn=f"arn:{props.partition}:iam::aws:policy/{SSM_MANAGED_POLICY}")
        profile = IamInstanceProfile(Construct(self, "profile"), id, name_prefix=props.role_name_prefix,
                                     role=role.name)
        ami = DataAwsSsmParameter(self, f"{id}_ami", name=props.ami_parameter)
        self.instance = Instance(
            self, id, ami=ami.value, instance_type=props.instance_type, subnet_id=props.subnet_id,
            vpc_security_group_ids=[sg.id], iam_instance_profile=profile.name,
            associate_public_ip_address=False, ebs_optimized=True,
            metadata_options=InstanceMetadataOptions(http_endpoint="enabled", http_tokens="required",
                                                     http_put_response_hop_limit=1),
            root_block_device=InstanceRootBlockDevice(encrypted=True, volume_type="gp3", volume_size=8,
                                                      delete_on_termination=True),
            tags={"Name": f"{props.name}-api-tunnel"},
            # SSM Agent registers at first boot: its role must hold the SSM policy and, in a VPC we create, the
            # Systems Manager endpoints must answer by then (else it backs off and `make tunnel` waits longer).
            depends_on=[attachment, *ssm_path],
            # A new AMI release must not replace the instance on every plan: it is refreshed on purpose
            # (`python -m scripts.tf infra apply -replace=aws_instance.api_tunnel`, docs/deploy.md).
            lifecycle=TerraformResourceLifecycle(ignore_changes=["ami"]))
        skip(self.instance, "CKV_AWS_126",
             "A relay with no workload of its own: EC2's basic 5-minute metrics show whether it runs; detailed "
             "monitoring would cost about as much as the instance")
        self.instance_id = self.instance.id
        self.security_group_id = sg.id

    def _ssm_endpoints(self, props: ApiTunnelProps, tunnel_sg: SecurityGroup, id: str) -> list[TerraformResource]:
        """The Systems Manager endpoints and the rules the tunnel instance reaches them through."""
        sg = SecurityGroup(Construct(self, "endpoints_sg"), "ssm_endpoints",
                           name_prefix=props.endpoints_security_group_name_prefix, vpc_id=props.vpc_id,
                           description=f"Systems Manager endpoints of {props.name}: HTTPS from the VPC",
                           tags={"Name": f"{props.name}-ssm-endpoints"},
                           lifecycle=TerraformResourceLifecycle(create_before_destroy=True))
        ingress = VpcSecurityGroupIngressRule(
            self, "ssm_endpoints_from_vpc", security_group_id=sg.id, ip_protocol="tcp", from_port=HTTPS,
            to_port=HTTPS, cidr_ipv4=props.vpc_cidr,
            description="HTTPS from the VPC (private DNS sends every SSM client in the VPC here)")
        egress = VpcSecurityGroupEgressRule(
            self, f"{id}_to_ssm", security_group_id=tunnel_sg.id, ip_protocol="tcp", from_port=HTTPS, to_port=HTTPS,
            referenced_security_group_id=sg.id,
            description="HTTPS to the Systems Manager endpoints (SSM Agent)")
        return [ingress, egress, *(VpcEndpoint(Construct(self, f"endpoint_{service}"), service, vpc_id=props.vpc_id,
                            service_name=f"com.amazonaws.{props.region}.{service}", vpc_endpoint_type="Interface",
                            subnet_ids=[props.subnet_id], security_group_ids=[sg.id], private_dns_enabled=True,
                            tags={"Name": f"{props.name}-{service}"})
                for service in SSM_ENDPOINT_SERVICES)]
