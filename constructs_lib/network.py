"""Network: a VPC with public and private subnets across >= 2 AZs, NAT, routes, S3 gateway endpoint
and flow logs -- or an existing VPC and subnets, passed through."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktf import Fn, Postcondition, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_availability_zones import (
    DataAwsAvailabilityZones,
    DataAwsAvailabilityZonesFilter,
)
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route import Route
from cdktf_cdktf_provider_aws.route_table import RouteTable
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from constructs import Construct

from .checkov import skip, skippable
from .iam import policy_document, service_assume_role_policy_from, statement


@dataclass(frozen=True)
class NetworkProps:
    name: str
    cluster_name: str
    region: str
    vpc_cidr: str
    private_subnet_cidrs: list[str]
    public_subnet_cidrs: list[str]
    # Empty: the first len(private_subnet_cidrs) AZs of the region, looked up at plan time.
    availability_zones: list[str]
    single_nat_gateway: bool
    flow_log_retention_days: int
    flow_log_group_name: str
    flow_log_role_name_prefix: str
    logs_kms_key_arn: str
    account_id: str  # the flow-logs role trusts the service for this account's flow logs only
    partition: str
    # Existing VPC: nothing is created; the ids are passed through.
    existing_vpc_id: str | None = None
    existing_private_subnet_ids: list[str] = field(default_factory=list)
    existing_public_subnet_ids: list[str] = field(default_factory=list)
    # More tags on the created private subnets (Karpenter's discovery tag; an existing VPC's get it elsewhere).
    private_subnet_tags: dict[str, str] = field(default_factory=dict)


class Network(Construct):
    vpc_id: str
    private_subnet_ids: list[str]
    public_subnet_ids: list[str]
    private_route_table_ids: list[str]

    def __init__(self, scope: Construct, id: str, props: NetworkProps) -> None:
        super().__init__(scope, id)
        if props.existing_vpc_id:
            self.vpc_id = props.existing_vpc_id
            self.private_subnet_ids = list(props.existing_private_subnet_ids)
            self.public_subnet_ids = list(props.existing_public_subnet_ids)
            self.private_route_table_ids = []
            return

        # One child scope per resource type lets subnet, route table and association share a name.
        rts, assocs = Construct(self, "route_tables"), Construct(self, "associations")
        cluster_tag = {f"kubernetes.io/cluster/{props.cluster_name}": "shared"}
        vpc = Vpc(self, "ray", cidr_block=props.vpc_cidr, enable_dns_hostnames=True, enable_dns_support=True,
                  tags={"Name": props.name})
        # Lock down the default security group: nothing should use it (CIS 5.4).
        DefaultSecurityGroup(self, "default", vpc_id=vpc.id, tags={"Name": f"{props.name}-default-unused"})

        n = len(props.private_subnet_cidrs)
        if props.availability_zones:
            azs = list(props.availability_zones)
        else:
            # No `state` filter: an impaired AZ dropping out of the list would shift the indices below and
            # move subnets. The opt-in filter keeps Local and Wavelength Zones out.
            available = skippable(DataAwsAvailabilityZones)(
                self, "available",
                filter=[DataAwsAvailabilityZonesFilter(name="opt-in-status", values=["opt-in-not-required"])],
                # element() wraps around: without this, a region with fewer AZs would silently stack subnets.
                lifecycle=TerraformResourceLifecycle(postcondition=[Postcondition(
                    condition=f"${{length(self.names) >= {n}}}",
                    error_message=f"network.az_count is {n}, but this region has fewer availability zones; "
                                  "lower az_count or list network.availability_zones")]))
            skip(available, "CKV_AWS_394",
                 "Used only when network.availability_zones is empty: the first N zone names, which the provider "
                 "sorts, so a newly added AZ (a later letter) does not change the choice. Pin "
                 "network.availability_zones to fix the zones by name")
            azs = [Fn.element(available.names, i) for i in range(n)]

        igw = InternetGateway(Construct(self, "igw"), "ray", vpc_id=vpc.id, tags={"Name": props.name})
        public_rt = RouteTable(rts, "public", vpc_id=vpc.id, tags={"Name": f"{props.name}-public"})
        Route(self, "public_internet", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0",
              gateway_id=igw.id)

        public, private, private_rts = [], [], []
        for i in range(n):
            pub = Subnet(self, f"public_{i}", vpc_id=vpc.id, cidr_block=props.public_subnet_cidrs[i],
                         availability_zone=azs[i], map_public_ip_on_launch=False,
                         tags={"Name": f"{props.name}-public-{i}", "kubernetes.io/role/elb": "1", **cluster_tag})
            RouteTableAssociation(assocs, f"public_{i}", subnet_id=pub.id, route_table_id=public_rt.id)
            public.append(pub)
        nat_count = 1 if props.single_nat_gateway else n
        nats = []
        for i in range(nat_count):
            eip = Eip(Construct(self, f"eip_{i}"), f"nat_{i}", domain="vpc", tags={"Name": f"{props.name}-nat-{i}"})
            nats.append(NatGateway(self, f"nat_{i}", allocation_id=eip.id, subnet_id=public[i].id,
                                   tags={"Name": f"{props.name}-nat-{i}"}, depends_on=[igw]))
        for i in range(n):
            priv = Subnet(self, f"private_{i}", vpc_id=vpc.id, cidr_block=props.private_subnet_cidrs[i],
                          availability_zone=azs[i],
                          tags={"Name": f"{props.name}-private-{i}", "kubernetes.io/role/internal-elb": "1",
                                **cluster_tag, **props.private_subnet_tags})
            rt = RouteTable(rts, f"private_{i}", vpc_id=vpc.id, tags={"Name": f"{props.name}-private-{i}"})
            Route(self, f"private_{i}_nat", route_table_id=rt.id, destination_cidr_block="0.0.0.0/0",
                  nat_gateway_id=nats[min(i, nat_count - 1)].id)
            RouteTableAssociation(assocs, f"private_{i}", subnet_id=priv.id, route_table_id=rt.id)
            private.append(priv)
            private_rts.append(rt)

        # S3 traffic (FSx data repository, checkpoints, images) stays off the NAT gateways.
        VpcEndpoint(self, "s3", vpc_id=vpc.id, service_name=f"com.amazonaws.{props.region}.s3",
                    vpc_endpoint_type="Gateway", route_table_ids=[rt.id for rt in private_rts],
                    tags={"Name": f"{props.name}-s3"})

        self._flow_logs(props, vpc)

        self.vpc = vpc
        self.vpc_id = vpc.id
        self.private_subnet_ids = [s.id for s in private]
        self.public_subnet_ids = [s.id for s in public]
        self.private_route_table_ids = [rt.id for rt in private_rts]

    def _flow_logs(self, props: NetworkProps, vpc: Vpc) -> None:
        group = CloudwatchLogGroup(self, "vpc_flow_logs", name=props.flow_log_group_name,
                                   retention_in_days=props.flow_log_retention_days, kms_key_id=props.logs_kms_key_arn)
        # The flow-logs service, for this account's flow logs only (the VPC user guide's confused-deputy
        # conditions; the flow log's own id is not known before it exists, hence the wildcard).
        role = IamRole(self, "vpc_flow_logs_role", name_prefix=props.flow_log_role_name_prefix,
                       assume_role_policy=service_assume_role_policy_from(
                           "vpc-flow-logs.amazonaws.com", props.account_id,
                           f"arn:{props.partition}:ec2:{props.region}:{props.account_id}:vpc-flow-log/*"))
        IamRolePolicy(self, "vpc_flow_logs_policy", role=role.id, name="write-flow-logs",
                      policy=policy_document([statement(
                          ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                          [group.arn, f"{group.arn}:*"])]))
        FlowLog(self, "vpc", vpc_id=vpc.id, traffic_type="ALL", log_destination=group.arn,
                log_destination_type="cloud-watch-logs", iam_role_arn=role.arn,
                tags={"Name": f"{props.name}-flow-logs"})
