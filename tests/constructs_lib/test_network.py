"""Network construct, alone from its props (``construct_synth``) and through the infra stack's JSON: VPC, subnets
across AZs with the EKS/ELB tags, NAT per AZ (or one), routes, the S3 gateway endpoint, flow logs -- or an existing
VPC passed through untouched."""

from __future__ import annotations

import ipaddress
import json

import pytest
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_availability_zones import DataAwsAvailabilityZones
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint

from constructs_lib.network import Network, NetworkProps
from tests.helpers import (
    EXISTING_PRIVATE_SUBNETS,
    EXISTING_PUBLIC_SUBNETS,
    EXISTING_VPC_ID,
    attrs,
    one,
    outputs,
    ref,
    resources,
)

VPC_ID = ref("aws_vpc", "ray", "id")
NETWORK_TYPES = ("aws_vpc", "aws_subnet", "aws_internet_gateway", "aws_nat_gateway", "aws_eip", "aws_route_table",
                 "aws_route", "aws_route_table_association", "aws_vpc_endpoint", "aws_flow_log",
                 "aws_default_security_group")


def _subnets(stack: dict, kind: str) -> dict[str, dict]:
    found = {n: attrs(s) for n, s in resources(stack, "aws_subnet").items() if n.startswith(f"{kind}_")}
    return dict(sorted(found.items()))


def test_vpc_has_configured_cidr_and_dns(created_network_shape):
    s = created_network_shape
    vpcs = resources(s.infra, "aws_vpc")
    assert list(vpcs) == ["ray"]
    vpc = attrs(vpcs["ray"])
    assert vpc["cidr_block"] == s.cfg.network.vpc_cidr
    # EKS nodes and FSx clients resolve private DNS names: both flags are required.
    assert vpc["enable_dns_support"] is True and vpc["enable_dns_hostnames"] is True


def test_public_and_private_subnet_per_az(created_network_shape):
    s = created_network_shape
    n = s.cfg.network.zone_count
    assert n >= 2
    public, private = _subnets(s.infra, "public"), _subnets(s.infra, "private")
    assert len(public) == n and len(private) == n
    assert len(resources(s.infra, "aws_subnet")) == 2 * n
    for group in (public, private):
        azs = [sub["availability_zone"] for sub in group.values()]
        assert len(set(azs)) == n, f"subnets share an AZ: {azs}"
        assert all(sub["vpc_id"] == VPC_ID for sub in group.values())
    # Each private subnet sits in the AZ of the public subnet (and NAT) with the same index.
    assert [p["availability_zone"] for p in public.values()] == [p["availability_zone"] for p in private.values()]


def test_subnet_cidrs_inside_vpc_and_disjoint(created_network_shape):
    s = created_network_shape
    vpc = ipaddress.ip_network(s.cfg.network.vpc_cidr)
    nets = [ipaddress.ip_network(attrs(sub)["cidr_block"]) for sub in resources(s.infra, "aws_subnet").values()]
    assert all(net.subnet_of(vpc) for net in nets)
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            assert not a.overlaps(b), f"{a} overlaps {b}"


def test_default_azs_are_looked_up_distinct_by_index(infra):
    # No AZ list configured: the region's available AZs, one index per subnet.
    azs = [sub["availability_zone"] for sub in _subnets(infra, "private").values()]
    assert azs == [f"${{element(data.aws_availability_zones.available.names, {i})}}" for i in range(3)]
    assert "available" in infra["data"]["aws_availability_zones"]


def test_dev_uses_its_explicit_azs(dev_infra):
    for kind in ("public", "private"):
        assert [sub["availability_zone"] for sub in _subnets(dev_infra, kind).values()] == ["us-west-2a", "us-west-2b"]
    assert "aws_availability_zones" not in dev_infra.get("data", {}), "explicit AZs need no lookup"


def test_subnets_carry_eks_and_elb_tags(created_network_shape):
    s = created_network_shape
    cluster_tag = f"kubernetes.io/cluster/{s.cfg.name}"
    n = s.cfg.network.zone_count
    assert len(_subnets(s.infra, "public")) == len(_subnets(s.infra, "private")) == n
    for name, sub in _subnets(s.infra, "public").items():
        tags = sub["tags"]
        assert tags.get("kubernetes.io/role/elb") == "1", name
        assert "kubernetes.io/role/internal-elb" not in tags, name
        assert tags.get(cluster_tag) in ("shared", "owned"), name
        # Nodes live in private subnets; nothing launched here should get a public IP by default.
        assert sub.get("map_public_ip_on_launch") in (None, False), name
    for name, sub in _subnets(s.infra, "private").items():
        tags = sub["tags"]
        assert tags.get("kubernetes.io/role/internal-elb") == "1", name
        assert "kubernetes.io/role/elb" not in tags, name
        assert tags.get(cluster_tag) in ("shared", "owned"), name


def test_public_subnets_route_to_internet_gateway(created_network_shape):
    st = created_network_shape.infra
    assert list(resources(st, "aws_internet_gateway")) == ["ray"]
    assert attrs(one(st, "aws_internet_gateway", "ray"))["vpc_id"] == VPC_ID
    public_rt = ref("aws_route_table", "public", "id")
    default_routes = [attrs(r) for r in resources(st, "aws_route").values()
                      if attrs(r)["route_table_id"] == public_rt]
    assert default_routes == [{"destination_cidr_block": "0.0.0.0/0",
                               "gateway_id": ref("aws_internet_gateway", "ray", "id"), "route_table_id": public_rt}]
    assocs = resources(st, "aws_route_table_association")
    assert _subnets(st, "public")
    for name in _subnets(st, "public"):
        assert attrs(assocs[name]) == {"subnet_id": ref("aws_subnet", name, "id"), "route_table_id": public_rt}


def _private_default_routes(st: dict) -> dict[str, str]:
    """Private route table -> the NAT gateway its 0.0.0.0/0 route uses."""
    out = {}
    for r in resources(st, "aws_route").values():
        r = attrs(r)
        if r["destination_cidr_block"] == "0.0.0.0/0" and "nat_gateway_id" in r:
            out[r["route_table_id"]] = r["nat_gateway_id"]
    return out


def test_nat_gateway_per_az_by_default(infra):
    nats = {n: attrs(g) for n, g in resources(infra, "aws_nat_gateway").items()}
    assert len(nats) == 3
    # One NAT in each public subnet, each with its own Elastic IP.
    assert sorted(g["subnet_id"] for g in nats.values()) == [ref("aws_subnet", f"public_{i}", "id") for i in range(3)]
    assert len({g["allocation_id"] for g in nats.values()}) == 3
    eips = resources(infra, "aws_eip")
    assert len(eips) == 3 and all(attrs(e)["domain"] == "vpc" for e in eips.values())
    # Each AZ's private subnets leave through the NAT of the same AZ: an AZ outage stays in its AZ.
    routes = _private_default_routes(infra)
    for i in range(3):
        nat_name = next(n for n, g in nats.items() if g["subnet_id"] == ref("aws_subnet", f"public_{i}", "id"))
        assert routes[ref("aws_route_table", f"private_{i}", "id")] == ref("aws_nat_gateway", nat_name, "id")


def test_single_nat_gateway_in_dev(dev_infra):
    nats = resources(dev_infra, "aws_nat_gateway")
    assert len(nats) == 1 and len(resources(dev_infra, "aws_eip")) == 1
    (nat_name,) = nats
    routes = _private_default_routes(dev_infra)
    assert routes == {ref("aws_route_table", f"private_{i}", "id"): ref("aws_nat_gateway", nat_name, "id")
                      for i in range(2)}


def test_each_private_subnet_uses_its_private_route_table(created_network_shape):
    st = created_network_shape.infra
    assocs = resources(st, "aws_route_table_association")
    private_rts = set()
    for name in _subnets(st, "private"):
        a = attrs(assocs[name])
        assert a["subnet_id"] == ref("aws_subnet", name, "id")
        assert a["route_table_id"] != ref("aws_route_table", "public", "id")
        private_rts.add(a["route_table_id"])
    assert len(private_rts) == created_network_shape.cfg.network.zone_count, "a route table per private subnet"
    assert private_rts == set(_private_default_routes(st)), "every private route table needs its NAT route"


def test_s3_gateway_endpoint_on_private_route_tables(created_network_shape):
    s = created_network_shape
    endpoints = {n: attrs(e) for n, e in resources(s.infra, "aws_vpc_endpoint").items()}
    s3 = [e for e in endpoints.values() if e["service_name"] == f"com.amazonaws.{s.cfg.region}.s3"]
    assert len(s3) == 1, endpoints
    ep = s3[0]
    assert ep["vpc_endpoint_type"] == "Gateway"
    assert ep["vpc_id"] == VPC_ID
    private_rts = {ref("aws_route_table", f"private_{i}", "id") for i in range(s.cfg.network.zone_count)}
    assert set(ep["route_table_ids"]) == private_rts


def test_flow_logs_capture_all_vpc_traffic(created_network_shape):
    st = created_network_shape.infra
    (flow,) = [attrs(f) for f in resources(st, "aws_flow_log").values()]
    assert flow["vpc_id"] == VPC_ID and flow["traffic_type"] == "ALL"


def test_created_network_ids_in_outputs(created_network_shape):
    s = created_network_shape
    out = outputs(s.infra)
    n = s.cfg.network.zone_count
    assert out["vpc_id"]["value"] == VPC_ID
    assert out["private_subnet_ids"]["value"] == [ref("aws_subnet", f"private_{i}", "id") for i in range(n)]
    assert out["public_subnet_ids"]["value"] == [ref("aws_subnet", f"public_{i}", "id") for i in range(n)]


def test_existing_vpc_creates_no_network(existing_infra):
    created = {t: sorted(resources(existing_infra, t)) for t in NETWORK_TYPES if resources(existing_infra, t)}
    assert created == {}, f"an existing VPC must be used as is, but the stack creates {created}"
    assert "aws_availability_zones" not in existing_infra.get("data", {})


def test_existing_vpc_ids_pass_through(existing_infra):
    out = outputs(existing_infra)
    assert out["vpc_id"]["value"] == EXISTING_VPC_ID
    assert out["private_subnet_ids"]["value"] == EXISTING_PRIVATE_SUBNETS
    assert out["public_subnet_ids"]["value"] == EXISTING_PUBLIC_SUBNETS
    # ...and into everything that lives in the network.
    assert attrs(one(existing_infra, "aws_eks_cluster", "ray"))["vpc_config"]["subnet_ids"] == EXISTING_PRIVATE_SUBNETS
    assert resources(existing_infra, "aws_eks_node_group") and resources(existing_infra, "aws_security_group")
    for name, group in resources(existing_infra, "aws_eks_node_group").items():
        assert attrs(group)["subnet_ids"] == EXISTING_PRIVATE_SUBNETS, name
    fs = attrs(one(existing_infra, "aws_fsx_lustre_file_system", "ray"))
    assert fs["subnet_ids"] == [EXISTING_PRIVATE_SUBNETS[0]]
    for name, sg in resources(existing_infra, "aws_security_group").items():
        assert attrs(sg)["vpc_id"] == EXISTING_VPC_ID, name


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
def _props(**kw) -> NetworkProps:
    base = dict(name="unit", cluster_name="unit-cluster", region="eu-central-1", vpc_cidr="10.9.0.0/16",
                private_subnet_cidrs=["10.9.0.0/19", "10.9.32.0/19"],
                public_subnet_cidrs=["10.9.64.0/22", "10.9.68.0/22"],
                availability_zones=["eu-central-1a", "eu-central-1b"], single_nat_gateway=True,
                flow_log_retention_days=400, flow_log_group_name="/unit/flow-logs",
                flow_log_role_name_prefix="unit-flow-",
                logs_kms_key_arn="arn:aws:kms:eu-central-1:111122223333:key/logs", account_id="111122223333",
                partition="aws")
    return NetworkProps(**{**base, **kw})


OUTPUTS = ("vpc_id", "private_subnet_ids", "public_subnet_ids", "private_route_table_ids")
THREE_PRIVATE = ["10.9.0.0/19", "10.9.32.0/19", "10.9.96.0/19"]


@pytest.fixture(scope="module")
def two_zones_one_nat(construct_synth):
    return construct_synth(lambda stack: Network(stack, "network", _props()), outputs=OUTPUTS)


@pytest.fixture(scope="module")
def looked_up_zones(construct_synth):
    """No AZs named, three subnets, a NAT gateway per AZ."""
    return construct_synth(lambda stack: Network(stack, "network", _props(
        availability_zones=[], single_nat_gateway=False,
        private_subnet_cidrs=THREE_PRIVATE, public_subnet_cidrs=["10.9.64.0/22", "10.9.68.0/22", "10.9.72.0/22"])),
        outputs=OUTPUTS)


def test_alone_vpc_and_subnets_from_the_props(two_zones_one_nat):
    n = two_zones_one_nat
    assert n.has_resource(Vpc, {"cidr_block": "10.9.0.0/16", "enable_dns_hostnames": True, "enable_dns_support": True,
                                "tags": {"Name": "unit"}})
    cluster_tag = {"kubernetes.io/cluster/unit-cluster": "shared"}
    zones = zip(["eu-central-1a", "eu-central-1b"], ["10.9.0.0/19", "10.9.32.0/19"], ["10.9.64.0/22", "10.9.68.0/22"],
                strict=True)
    for i, (az, private, public) in enumerate(zones):
        assert n.has_resource(Subnet, {"cidr_block": private, "availability_zone": az,
                                       "tags": {"Name": f"unit-private-{i}", "kubernetes.io/role/internal-elb": "1",
                                                **cluster_tag}})
        assert n.has_resource(Subnet, {"cidr_block": public, "availability_zone": az, "map_public_ip_on_launch": False,
                                       "tags": {"Name": f"unit-public-{i}", "kubernetes.io/role/elb": "1",
                                                **cluster_tag}})
    assert len(n.resources("aws_subnet")) == 4
    assert not n.data("aws_availability_zones"), "named AZs need no lookup"
    assert n.output("vpc_id") == ref("aws_vpc", "ray", "id")
    assert n.output("private_subnet_ids") == [ref("aws_subnet", f"private_{i}", "id") for i in range(2)]
    assert n.output("public_subnet_ids") == [ref("aws_subnet", f"public_{i}", "id") for i in range(2)]


def test_alone_one_nat_gateway_serves_every_private_route_table(two_zones_one_nat):
    n = two_zones_one_nat
    assert list(n.resources("aws_nat_gateway")) == ["nat_0"] and len(n.resources("aws_eip")) == 1
    assert _private_default_routes(n.doc) == {ref("aws_route_table", f"private_{i}", "id"):
                                              ref("aws_nat_gateway", "nat_0", "id") for i in range(2)}


def test_alone_a_nat_gateway_per_zone_and_the_zones_looked_up(looked_up_zones):
    n = looked_up_zones
    assert _private_default_routes(n.doc) == {ref("aws_route_table", f"private_{i}", "id"):
                                              ref("aws_nat_gateway", f"nat_{i}", "id") for i in range(3)}
    for i in range(3):
        assert n.has_resource("aws_nat_gateway", {"subnet_id": ref("aws_subnet", f"public_{i}", "id")})
        zone = f"${{element(data.aws_availability_zones.available.names, {i})}}"
        assert n.has_resource(Subnet, {"cidr_block": THREE_PRIVATE[i], "availability_zone": zone})
    # Local and Wavelength Zones left out; too few zones for the subnets fails the plan, not the apply.
    assert n.has_data_source(DataAwsAvailabilityZones, {
        "filter": [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]})
    (postcondition,) = n.data("aws_availability_zones")["available"]["lifecycle"]["postcondition"]
    assert postcondition["condition"] == "${length(self.names) >= 3}"


def test_alone_s3_gateway_endpoint_on_the_private_route_tables(looked_up_zones):
    assert looked_up_zones.has_resource(VpcEndpoint, {
        "service_name": "com.amazonaws.eu-central-1.s3", "vpc_endpoint_type": "Gateway",
        "route_table_ids": [ref("aws_route_table", f"private_{i}", "id") for i in range(3)]})
    assert looked_up_zones.output("private_route_table_ids") == [ref("aws_route_table", f"private_{i}", "id")
                                                                 for i in range(3)]


def test_alone_flow_logs_to_the_props_log_group_and_key(two_zones_one_nat):
    n = two_zones_one_nat
    assert n.has_resource(CloudwatchLogGroup, {"name": "/unit/flow-logs", "retention_in_days": 400,
                                               "kms_key_id": "arn:aws:kms:eu-central-1:111122223333:key/logs"})
    assert n.has_resource(FlowLog, {"vpc_id": ref("aws_vpc", "ray", "id"), "traffic_type": "ALL",
                                    "log_destination_type": "cloud-watch-logs",
                                    "log_destination": ref("aws_cloudwatch_log_group", "vpc_flow_logs", "arn")})
    role = n.one("aws_iam_role", "vpc_flow_logs_role")
    assert role["name_prefix"] == "unit-flow-"
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {  # this account's flow logs only (confused deputy)
        "StringEquals": {"aws:SourceAccount": "111122223333"},
        "ArnLike": {"aws:SourceArn": "arn:aws:ec2:eu-central-1:111122223333:vpc-flow-log/*"}}


def test_alone_the_default_security_group_allows_nothing(two_zones_one_nat):
    assert two_zones_one_nat.has_resource(DefaultSecurityGroup, {"vpc_id": ref("aws_vpc", "ray", "id")})
    (default,) = two_zones_one_nat.resources("aws_default_security_group").values()
    assert "ingress" not in default and "egress" not in default  # no rules: the group admits nothing


def test_alone_an_existing_vpc_is_passed_through_and_nothing_created(construct_synth):
    existing = construct_synth(lambda stack: Network(stack, "network", _props(
        existing_vpc_id=EXISTING_VPC_ID, existing_private_subnet_ids=EXISTING_PRIVATE_SUBNETS,
        existing_public_subnet_ids=EXISTING_PUBLIC_SUBNETS)), outputs=OUTPUTS)
    assert "resource" not in existing.doc and "data" not in existing.doc
    assert existing.output("vpc_id") == EXISTING_VPC_ID
    assert existing.output("private_subnet_ids") == EXISTING_PRIVATE_SUBNETS
    assert existing.output("public_subnet_ids") == EXISTING_PUBLIC_SUBNETS
    assert existing.output("private_route_table_ids") == []
