"""How the deployer reaches the Kubernetes API (cluster.endpoint_access), on the synthesized stacks: the default
(tunnel) gives the infra stack an SSM-managed instance that can reach the endpoint and nothing else, and points the
ray stacks' providers at the tunnel's local port with the endpoint's host as TLS server name; private admits the
configured networks on 443; public opens the endpoint to its CIDRs only. Plus what every stack now declares: the
Terraform version, and one state per deployment (its name and region in the path, its identity as an output)."""

from __future__ import annotations

import json

import pytest

from constructs_lib.api_tunnel import SSM_ENDPOINT_SERVICES, SSM_MANAGED_POLICY, ApiTunnel, ApiTunnelProps
from constructs_lib.fsx_lustre import LUSTRE_PORTS
from conventions.api_access import TUNNEL_AMI_PARAMETER, TUNNEL_INSTANCE_TYPE
from tests.helpers import attrs, one, outputs, ref, resources, stack_items

CLUSTER_SG = "${aws_eks_cluster.ray.vpc_config[0].cluster_security_group_id}"
ENDPOINT = "data.terraform_remote_state.infra.outputs.cluster_endpoint"


def _rules(stack: dict, kind: str) -> dict[str, dict]:
    return {n: attrs(r) for n, r in resources(stack, f"aws_vpc_security_group_{kind}_rule").items()}


def _providers(stack: dict) -> list[dict]:
    """The Kubernetes connection settings of a ray stack: the kubernetes provider's, and helm's kubernetes block."""
    p = stack["provider"]
    return [p["kubernetes"][0], *([p["helm"][0]["kubernetes"]] if "helm" in p else [])]


# ------------------------------------------------------------------------------------------------- tunnel (default)
def test_default_tunnel_instance_is_minimal_and_closed(infra):
    inst = attrs(one(infra, "aws_instance", "api_tunnel"))
    assert inst["instance_type"] == TUNNEL_INSTANCE_TYPE
    assert inst["ami"] == "${data.aws_ssm_parameter.api_tunnel_ami.value}"
    assert infra["data"]["aws_ssm_parameter"]["api_tunnel_ami"]["name"] == TUNNEL_AMI_PARAMETER
    assert "key_name" not in inst and inst["associate_public_ip_address"] is False
    assert inst["metadata_options"] == {"http_endpoint": "enabled", "http_tokens": "required",
                                        "http_put_response_hop_limit": 1}
    assert inst["root_block_device"]["encrypted"] is True
    assert inst["subnet_id"] == ref("aws_subnet", "private_0", "id")  # private, no route from the internet
    assert inst["vpc_security_group_ids"] == [ref("aws_security_group", "api_tunnel", "id")]
    # One role, and on it only the SSM managed-instance policy.
    assert inst["iam_instance_profile"] == ref("aws_iam_instance_profile", "api_tunnel", "name")
    profile = attrs(one(infra, "aws_iam_instance_profile", "api_tunnel"))
    assert profile["role"] == ref("aws_iam_role", "api_tunnel", "name")
    attached = [a for a in resources(infra, "aws_iam_role_policy_attachment").values()
                if a["role"] == ref("aws_iam_role", "api_tunnel", "name")]
    assert [a["policy_arn"] for a in attached] == [
        "arn:${data.aws_partition.current_partition.partition}:iam::aws:policy/" + SSM_MANAGED_POLICY]
    assert not [p for p in resources(infra, "aws_iam_role_policy").values()
                if p["role"] in (ref("aws_iam_role", "api_tunnel", "id"), ref("aws_iam_role", "api_tunnel", "name"))]
    trust = json.loads(one(infra, "aws_iam_role", "api_tunnel")["assume_role_policy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_default_tunnel_reaches_the_api_and_ssm_only(infra):
    tunnel_sg = ref("aws_security_group", "api_tunnel", "id")
    endpoints_sg = ref("aws_security_group", "ssm_endpoints", "id")
    ingress, egress = _rules(infra, "ingress"), _rules(infra, "egress")
    assert not [r for r in ingress.values() if r["security_group_id"] == tunnel_sg], "no inbound rule at all"
    out = sorted((r["from_port"], r["to_port"], r.get("referenced_security_group_id"), r.get("cidr_ipv4"))
                 for r in egress.values() if r["security_group_id"] == tunnel_sg)
    assert out == sorted([(443, 443, CLUSTER_SG, None), (443, 443, endpoints_sg, None)])
    # The cluster security group (on the endpoint's interfaces) admits it on 443.
    back = ingress["cluster_api_from_api_tunnel"]
    assert (back["security_group_id"], back["referenced_security_group_id"], back["from_port"], back["to_port"]) == \
        (CLUSTER_SG, tunnel_sg, 443, 443)
    # SSM Agent's endpoints inside the VPC, with private DNS, reachable from the VPC on 443.
    endpoints = {n: attrs(e) for n, e in resources(infra, "aws_vpc_endpoint").items() if n != "s3"}
    assert set(endpoints) == set(SSM_ENDPOINT_SERVICES)
    for service, e in endpoints.items():
        assert e["service_name"] == f"com.amazonaws.us-west-2.{service}"
        assert e["vpc_endpoint_type"] == "Interface" and e["private_dns_enabled"] is True
        assert e["security_group_ids"] == [endpoints_sg]
    from_vpc = ingress["ssm_endpoints_from_vpc"]
    assert (from_vpc["cidr_ipv4"], from_vpc["from_port"], from_vpc["to_port"]) == ("10.0.0.0/16", 443, 443)


def test_default_tunnel_boots_after_its_ssm_endpoints_and_keeps_its_ami(infra):
    """SSM Agent registers at first boot: the endpoints it calls (and its role's policy) exist before the instance.
    A new AMI in the public parameter does not replace the instance on every plan (a deliberate -replace does)."""
    inst = one(infra, "aws_instance", "api_tunnel")
    assert set(inst["depends_on"]) == {"aws_iam_role_policy_attachment.api_tunnel_ssm",
                                       *(f"aws_vpc_endpoint.{s}" for s in SSM_ENDPOINT_SERVICES),
                                       # the rules between them: the tunnel group has no default egress
                                       "aws_vpc_security_group_ingress_rule.ssm_endpoints_from_vpc",
                                       "aws_vpc_security_group_egress_rule.api_tunnel_to_ssm"}
    assert inst["lifecycle"]["ignore_changes"] == ["ami"]


def test_default_providers_reach_the_api_through_the_tunnel(default_synth):
    assert outputs(default_synth["infra"])["api_tunnel_instance_id"]["value"] == ref("aws_instance", "api_tunnel", "id")
    for stack in ("ray", "ray-cluster"):
        for p in _providers(default_synth[stack]):
            assert p["host"] == "https://127.0.0.1:8443"
            # The endpoint's certificate names its host: checked against it, not against 127.0.0.1.
            assert p["tls_server_name"] == f'${{replace({ENDPOINT}, "https://", "")}}'


def test_api_tunnel_in_an_existing_vpc_leaves_through_the_vpcs_own_way_to_ssm(construct_synth):
    """No endpoints of ours in a VPC we do not own (a second set with private DNS would fail): HTTPS out."""
    s = construct_synth(lambda stack: ApiTunnel(stack, "api_tunnel", ApiTunnelProps(
        name="ray-x", region="us-west-2", partition="aws", vpc_id="vpc-0a1b2c3d4e5f60718", vpc_cidr=None,
        subnet_id="subnet-0a1a1a1a1a1a1a1a1", cluster_security_group_id="sg-0123456789abcdef0",
        role_name_prefix="ray-x-api-tunnel-", security_group_name_prefix="ray-x-api-tunnel-",
        endpoints_security_group_name_prefix="ray-x-ssm-endpoints-")), outputs=("instance_id",))
    assert not s.resources("aws_vpc_endpoint") and not s.resources("aws_vpc_security_group_ingress_rule").get(
        "ssm_endpoints_from_vpc")
    out = {(r["from_port"], r.get("cidr_ipv4"), r.get("referenced_security_group_id"))
           for r in s.resources("aws_vpc_security_group_egress_rule").values()}
    assert out == {(443, "0.0.0.0/0", None), (443, None, "sg-0123456789abcdef0")}
    inst = s.one("aws_instance", "api_tunnel")
    assert inst["depends_on"] == ["aws_iam_role_policy_attachment.api_tunnel_ssm",
                                  "aws_vpc_security_group_egress_rule.api_tunnel_to_ssm"]
    assert inst["lifecycle"]["ignore_changes"] == ["ami"]
    assert s.output("instance_id") == ref("aws_instance", "api_tunnel", "id")


# ------------------------------------------------------------------------------------------------- private, public
def test_private_access_admits_the_configured_networks_on_443(existing_synth):
    infra = existing_synth["infra"]
    cfg = existing_synth["_cfg"]
    assert cfg.cluster.endpoint_access == "private" and cfg.cluster.private_access_cidrs
    assert not resources(infra, "aws_instance") and outputs(infra)["api_tunnel_instance_id"]["value"] == ""
    vpc = one(infra, "aws_eks_cluster", "ray")["vpc_config"]
    assert vpc["endpoint_public_access"] is False and vpc["endpoint_private_access"] is True
    rules = {n: r for n, r in _rules(infra, "ingress").items() if n.startswith("cluster_api_from_private_")}
    assert sorted((r["cidr_ipv4"], r["from_port"], r["to_port"], r["security_group_id"]) for r in rules.values()) == \
        sorted((c, 443, 443, CLUSTER_SG) for c in cfg.cluster.private_access_cidrs)
    for stack in ("ray", "ray-cluster"):
        for p in _providers(existing_synth[stack]):
            assert p["host"] == f"${{{ENDPOINT}}}" and "tls_server_name" not in p


def test_public_access_opens_the_endpoint_to_its_cidrs_only(open_synth):
    infra = open_synth["infra"]
    vpc = one(infra, "aws_eks_cluster", "ray")["vpc_config"]
    assert vpc["endpoint_public_access"] is True and vpc["public_access_cidrs"] == ["0.0.0.0/0"]
    assert not resources(infra, "aws_instance")
    assert not [n for n in _rules(infra, "ingress") if n.startswith("cluster_api_from_")]
    for p in _providers(open_synth["ray"]):
        assert p["host"] == f"${{{ENDPOINT}}}" and "tls_server_name" not in p


# ------------------------------------------------------------------------------------------------- FSx clients
@pytest.mark.parametrize("synth", ["default_synth", "existing_synth"])
def test_fsx_clients_admit_lustre_from_the_file_system(synth, request):
    """The FSx for Lustre guide: the clients' security group (the cluster's, on every node) admits TCP 988 and
    1018-1023 from the file system's."""
    infra = request.getfixturevalue(synth)["infra"]
    rules = {(r["from_port"], r["to_port"]) for r in _rules(infra, "ingress").values()
             if r["security_group_id"] == CLUSTER_SG
             and r.get("referenced_security_group_id") == ref("aws_security_group", "fsx", "id")}
    assert rules == set(LUSTRE_PORTS) == {(988, 988), (1018, 1023)}


# ------------------------------------------------------------------------------------------------- every stack
@pytest.mark.parametrize("synth", ["default_synth", "prod_synth", "other_region_synth"])
def test_every_stack_declares_terraform_and_its_deployment(synth, request):
    stacks = request.getfixturevalue(synth)
    cfg = stacks["_cfg"]
    for name, stack in stack_items(stacks):
        assert stack["terraform"]["required_version"] == ">= 1.10", name  # S3 native locking
        assert outputs(stack)["deployment"]["value"] == {"name": cfg.name, "region": cfg.region}, name
        backend = stack["terraform"]["backend"]
        where = backend["s3"]["key"] if "s3" in backend else backend["local"]["path"]
        assert where.endswith(f"/{cfg.name}/{cfg.region}/{name}.tfstate"), (name, where)


def test_two_deployments_never_share_a_state(default_synth, other_region_synth, open_synth):
    paths = [s["terraform"]["backend"]["local"]["path"] for synth in (default_synth, other_region_synth, open_synth)
             for _, s in stack_items(synth)]
    assert len(set(paths)) == len(paths), paths
