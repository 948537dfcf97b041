"""EKS control plane, alone from its props (``construct_synth``) and through the infra stack's JSON: version,
access entries (no aws-auth), secrets encryption, control-plane logging, endpoint access and the IAM OIDC provider
for IRSA."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_iam_session_context import DataAwsIamSessionContext
from cdktf_cdktf_provider_aws.eks_access_entry import EksAccessEntry
from cdktf_cdktf_provider_aws.eks_access_policy_association import EksAccessPolicyAssociation
from cdktf_cdktf_provider_aws.eks_cluster import EksCluster
from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider

from config.types import CONTROL_PLANE_LOG_TYPES
from constructs_lib.eks_cluster import EksClusterProps, RayEksCluster
from tests.helpers import attrs, one, outputs, ref, resources, stack_items, tf_json

CLUSTER_NAME = ref("aws_eks_cluster", "ray", "name")
ADMIN_POLICY = "cluster-access-policy/AmazonEKSClusterAdminPolicy"


def _cluster(stack: dict) -> dict:
    clusters = resources(stack, "aws_eks_cluster")
    assert list(clusters) == ["ray"]
    return attrs(clusters["ray"])


def _block(value):
    """A single nested block: cdktf writes it as an object, Terraform also accepts a one-item list."""
    if isinstance(value, list):
        assert len(value) == 1, value
        return value[0]
    return value


def test_version_follows_config(shape):
    assert _cluster(shape.infra)["version"] == shape.cfg.cluster.kubernetes_version


def test_default_version_is_current(infra):
    major, minor = (int(p) for p in _cluster(infra)["version"].split("."))
    assert (major, minor) >= (1, 33)


def test_version_is_configurable(existing_infra):
    # The existing-VPC config asks for 1.33, not the default.
    assert _cluster(existing_infra)["version"] == "1.33"


def test_cluster_name_from_config(shape):
    assert _cluster(shape.infra)["name"] == shape.cfg.name


def test_access_entries_mode_only(shape):
    access = _cluster(shape.infra)["access_config"]
    # API only: identities come from access entries, never from the aws-auth ConfigMap.
    assert access["authentication_mode"] == "API"


def test_no_implicit_creator_admin_and_no_self_managed_addons(shape):
    cluster = _cluster(shape.infra)
    # The creator's admin is an explicit entry (below); EKS's one-time bootstrap entry would collide with it
    # (409) when the creator is also listed, and would stay invisible to Terraform.
    assert cluster["access_config"]["bootstrap_cluster_creator_admin_permissions"] is False
    # No unmanaged vpc-cni/kube-proxy/coredns next to the managed add-ons.
    assert cluster["bootstrap_self_managed_addons"] is False


def _entries(stack: dict) -> tuple[dict, dict]:
    return ({n: attrs(e) for n, e in resources(stack, "aws_eks_access_entry").items()},
            {n: attrs(a) for n, a in resources(stack, "aws_eks_access_policy_association").items()})


def test_admin_principals_get_access_entry_and_cluster_admin_policy(existing_shape):
    st, principals = existing_shape.infra, existing_shape.cfg.cluster.admin_principal_arns
    assert principals, "the prod example names an admin role"
    entries, assocs = _entries(st)
    listed = {n: e for n, e in entries.items() if n.startswith("admin_")}
    assert sorted(e["principal_arn"] for e in listed.values()) == sorted(principals)
    for name, entry in listed.items():
        assert entry["cluster_name"] == CLUSTER_NAME
        assert entry.get("type", "STANDARD") == "STANDARD"
        # The association names the entry's principal through the entry, so it is created after it.
        entry_principal = ref("aws_eks_access_entry", name, "principal_arn")
        (assoc,) = [a for a in assocs.values() if a["principal_arn"] == entry_principal]
        assert assoc["cluster_name"] == CLUSTER_NAME
        assert assoc["policy_arn"].startswith("arn:") and assoc["policy_arn"].endswith(ADMIN_POLICY)
        assert assoc["access_scope"]["type"] == "cluster"


SESSION_ISSUER = "${data.aws_iam_session_context.current.issuer_arn}"


def test_creator_admin_is_an_explicit_entry_for_the_sessions_role(shape):
    """terraform-aws-eks v21's cluster_creator entry: the IAM role behind the caller's session, cluster admin."""
    assert shape.cfg.cluster.creator_is_admin
    session = attrs(shape.infra["data"]["aws_iam_session_context"]["current"])
    assert session["arn"] == "${data.aws_caller_identity.current.arn}"
    entries, assocs = _entries(shape.infra)
    entry, assoc = entries["cluster_creator"], assocs["cluster_creator_admin"]
    assert entry["principal_arn"] == SESSION_ISSUER and entry["cluster_name"] == CLUSTER_NAME
    assert assoc["principal_arn"] == SESSION_ISSUER and assoc["cluster_name"] == CLUSTER_NAME
    assert assoc["policy_arn"].endswith(ADMIN_POLICY) and assoc["access_scope"]["type"] == "cluster"
    assert "aws_eks_access_entry.cluster_creator" in assoc["depends_on"]


def test_creator_entry_is_counted_out_when_the_creator_is_listed(shape):
    """One entry per principal (EKS answers 409 to a second): the listed ARNs decide the creator's count."""
    entries, assocs = _entries(shape.infra)
    listed = json.dumps(list(shape.cfg.cluster.admin_principal_arns))
    expected = f"${{contains({listed}, data.aws_iam_session_context.current.issuer_arn) ? 0 : 1}}"
    assert entries["cluster_creator"]["count"] == expected
    assert assocs["cluster_creator_admin"]["count"] == expected


def test_only_the_creator_entry_without_admin_principals(infra):
    entries, assocs = _entries(infra)
    assert list(entries) == ["cluster_creator"] and list(assocs) == ["cluster_creator_admin"]


def _without_metadata(value):
    if isinstance(value, dict):
        return {k: _without_metadata(v) for k, v in value.items() if k != "//"}
    if isinstance(value, list):
        return [_without_metadata(v) for v in value]
    return value


@pytest.mark.parametrize("synth", ["default_synth", "dev_synth", "existing_synth"])
def test_no_aws_auth_configmap_anywhere(synth, request):
    for name, stack in stack_items(request.getfixturevalue(synth)):
        for rtype, byname in stack.get("resource", {}).items():
            if rtype.startswith("kubernetes_config_map"):
                for rname, body in byname.items():
                    assert "aws-auth" not in json.dumps(attrs(body)), f"{name}: {rtype}.{rname} manages aws-auth"
        text = json.dumps(_without_metadata(stack))  # `//` holds scanner skip notes, not configuration
        assert "aws-auth" not in text, f"stack {name} manages aws-auth"
        assert "mapRoles" not in text, f"stack {name} writes aws-auth role mappings"


def test_secrets_envelope_encryption_with_own_key(shape):
    enc = _block(_cluster(shape.infra)["encryption_config"])
    assert enc["resources"] == ["secrets"]
    provider = _block(enc["provider"])
    assert provider["key_arn"] == ref("aws_kms_key", "eks", "arn")
    assert attrs(one(shape.infra, "aws_kms_key", "eks"))["enable_key_rotation"] is True


def test_all_control_plane_log_types(shape):
    assert sorted(_cluster(shape.infra)["enabled_cluster_log_types"]) == sorted(CONTROL_PLANE_LOG_TYPES)
    assert len(CONTROL_PLANE_LOG_TYPES) == 5


def test_control_plane_log_group_exists_before_cluster(shape):
    groups = {n: attrs(g) for n, g in resources(shape.infra, "aws_cloudwatch_log_group").items()}
    # EKS writes to this exact name; created first, our retention and key apply from the first line.
    expected = f"/aws/eks/{shape.cfg.name}/cluster"
    (name,) = [n for n, g in groups.items() if g["name"] == expected]
    assert groups[name]["retention_in_days"] == shape.cfg.cluster.log_retention_days
    assert groups[name]["kms_key_id"] == ref("aws_kms_key", "data", "arn")
    assert f"aws_cloudwatch_log_group.{name}" in _cluster(shape.infra).get("depends_on", [])


def test_endpoint_private_and_public_only_for_configured_cidrs(shape):
    vpc = _cluster(shape.infra)["vpc_config"]
    cidrs = shape.cfg.cluster.public_access_cidrs
    assert vpc["endpoint_private_access"] is True
    if cidrs:
        assert vpc["endpoint_public_access"] is True
        assert vpc["public_access_cidrs"] == list(cidrs)
        assert "0.0.0.0/0" not in vpc["public_access_cidrs"]
    else:
        assert vpc["endpoint_public_access"] is False
        assert not vpc.get("public_access_cidrs")


def test_public_endpoint_off_by_default(infra):
    assert _cluster(infra)["vpc_config"]["endpoint_public_access"] is False


def test_dev_endpoint_is_private_and_reached_through_the_tunnel(dev_infra):
    vpc = _cluster(dev_infra)["vpc_config"]
    assert vpc["endpoint_public_access"] is False and not vpc.get("public_access_cidrs")
    assert "api_tunnel" in dev_infra["resource"]["aws_instance"]


def test_control_plane_in_private_subnets(created_network_shape):
    subnets = _cluster(created_network_shape.infra)["vpc_config"]["subnet_ids"]
    n = created_network_shape.cfg.network.zone_count
    assert subnets == [ref("aws_subnet", f"private_{i}", "id") for i in range(n)]


def test_cluster_role_trusts_eks_with_cluster_policy(shape):
    cluster = _cluster(shape.infra)
    role_name = cluster["role_arn"].split(".")[1]
    role = attrs(one(shape.infra, "aws_iam_role", role_name))
    trust = tf_json(role["assume_role_policy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "eks.amazonaws.com"}]
    policies = [attrs(a)["policy_arn"] for a in resources(shape.infra, "aws_iam_role_policy_attachment").values()
                if attrs(a)["role"] == ref("aws_iam_role", role_name, "name")]
    assert any(p.endswith(":iam::aws:policy/AmazonEKSClusterPolicy") for p in policies)


def test_oidc_provider_for_irsa(shape):
    providers = {n: attrs(p) for n, p in resources(shape.infra, "aws_iam_openid_connect_provider").items()}
    assert len(providers) == 1
    ((name, oidc),) = providers.items()
    assert oidc["url"] == "${aws_eks_cluster.ray.identity[0].oidc[0].issuer}"
    assert oidc["client_id_list"] == ["sts.amazonaws.com"]
    assert outputs(shape.infra)["oidc_provider_arn"]["value"] == ref("aws_iam_openid_connect_provider", name, "arn")


def test_no_creator_entry_when_the_creator_is_not_admin(edge_shape):
    assert edge_shape.cfg.cluster.creator_is_admin is False
    entries, assocs = _entries(edge_shape.infra)
    assert sorted(entries) == ["admin_0", "admin_1"]
    assert sorted(assocs) == ["admin_0_cluster_admin", "admin_1_cluster_admin"]
    assert "aws_iam_session_context" not in edge_shape.infra.get("data", {})
    assert _cluster(edge_shape.infra)["access_config"]["bootstrap_cluster_creator_admin_permissions"] is False


def test_cluster_role_and_log_group_names(shape):
    from conventions import naming

    role = attrs(one(shape.infra, "aws_iam_role", "cluster"))
    # A generated suffix: the same deployment name in two regions (IAM is global) never collides.
    assert "name" not in role and role["name_prefix"] == naming.iam_role_name_prefix(shape.cfg.name, "cluster")
    assert attrs(one(shape.infra, "aws_cloudwatch_log_group", "cluster_logs"))["name"] == \
        f"/aws/eks/{shape.cfg.name}/cluster"


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
ADMINS = ["arn:aws:iam::111122223333:role/PlatformAdmin", "arn:aws:iam::111122223333:role/team/Deployer"]
CALLER = "arn:aws:sts::111122223333:assumed-role/Deployer/ci-run"


def _props(**kw) -> EksClusterProps:
    base = dict(name="unit-cluster", role_name_prefix="unit-cluster-", log_group_name="/aws/eks/unit-cluster/cluster",
                kubernetes_version="1.34", subnet_ids=["subnet-a", "subnet-b"],
                secrets_kms_key_arn="arn:aws:kms:us-west-2:111122223333:key/secrets",
                logs_kms_key_arn="arn:aws:kms:us-west-2:111122223333:key/logs", partition="aws-us-gov",
                public_access_cidrs=["198.51.100.0/24"], private_access_cidrs=[], admin_principal_arns=ADMINS,
                creator_is_admin=True, caller_arn=CALLER, log_types=["api", "audit"], log_retention_days=90,
                account_id="111122223333", region="us-gov-west-1")
    return EksClusterProps(**{**base, **kw})


@pytest.fixture(scope="module")
def public_with_admins(construct_synth):
    return construct_synth(lambda stack: RayEksCluster(stack, "eks", _props()),
                           outputs=("name", "endpoint", "oidc_provider_arn", "oidc_issuer_host",
                                    "cluster_security_group_id"))


@pytest.fixture(scope="module")
def private_alone(construct_synth):
    """Private endpoint only (a VPN network may call it), no admins listed, the creator not an admin."""
    return construct_synth(lambda stack: RayEksCluster(stack, "eks", _props(
        public_access_cidrs=[], private_access_cidrs=["10.100.0.0/16", "192.168.8.0/24"], admin_principal_arns=[],
        creator_is_admin=False)))


def test_alone_cluster_from_the_props(public_with_admins):
    assert public_with_admins.has_resource(EksCluster, {
        "name": "unit-cluster", "version": "1.34", "enabled_cluster_log_types": ["api", "audit"],
        "vpc_config": {"subnet_ids": ["subnet-a", "subnet-b"], "endpoint_private_access": True,
                       "endpoint_public_access": True, "public_access_cidrs": ["198.51.100.0/24"]},
        "access_config": {"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": False},
        "bootstrap_self_managed_addons": False,
        "encryption_config": {"resources": ["secrets"],
                              "provider": {"key_arn": "arn:aws:kms:us-west-2:111122223333:key/secrets"}},
    })
    assert public_with_admins.output("name") == ref("aws_eks_cluster", "ray", "name")
    assert public_with_admins.output("cluster_security_group_id") == \
        "${aws_eks_cluster.ray.vpc_config[0].cluster_security_group_id}"


def test_alone_the_log_group_exists_first_with_the_props_retention_and_key(public_with_admins):
    assert public_with_admins.has_resource(CloudwatchLogGroup, {
        "name": "/aws/eks/unit-cluster/cluster", "retention_in_days": 90,
        "kms_key_id": "arn:aws:kms:us-west-2:111122223333:key/logs"})
    assert "aws_cloudwatch_log_group.cluster_logs" in public_with_admins.one("aws_eks_cluster", "ray")["depends_on"]


def test_alone_the_cluster_role_trusts_eks_in_the_props_partition(public_with_admins):
    role = public_with_admins.one("aws_iam_role", "cluster")
    assert role["name_prefix"] == "unit-cluster-"
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Principal"] == {"Service": "eks.amazonaws.com"}
    # For this cluster of this account only (confused deputy).
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "111122223333"},
        "ArnLike": {"aws:SourceArn": "arn:aws-us-gov:eks:us-gov-west-1:111122223333:cluster/unit-cluster"}}
    assert public_with_admins.has_resource("aws_iam_role_policy_attachment", {
        "role": ref("aws_iam_role", "cluster", "name"),
        "policy_arn": "arn:aws-us-gov:iam::aws:policy/AmazonEKSClusterPolicy"})


@pytest.mark.parametrize("i", [0, 1])
def test_alone_each_listed_admin_is_a_cluster_admin_entry(public_with_admins, i):
    assert public_with_admins.has_resource(EksAccessEntry, {
        "cluster_name": CLUSTER_NAME, "principal_arn": ADMINS[i], "type": "STANDARD"})
    assert public_with_admins.has_resource(EksAccessPolicyAssociation, {
        "principal_arn": ref("aws_eks_access_entry", f"admin_{i}", "principal_arn"),
        "policy_arn": f"arn:aws-us-gov:eks::aws:{ADMIN_POLICY}", "access_scope": {"type": "cluster"}})


def test_alone_the_creator_is_an_admin_unless_listed(public_with_admins):
    assert public_with_admins.has_data_source(DataAwsIamSessionContext, {"arn": CALLER})
    counted = f"${{contains({json.dumps(ADMINS)}, data.aws_iam_session_context.current.issuer_arn) ? 0 : 1}}"
    assert public_with_admins.has_resource(EksAccessEntry, {
        "count": counted, "principal_arn": "${data.aws_iam_session_context.current.issuer_arn}"})
    assert public_with_admins.one("aws_eks_access_policy_association", "cluster_creator_admin")["count"] == counted


def test_alone_the_oidc_provider_trusts_the_clusters_issuer_for_sts(public_with_admins):
    issuer = "${aws_eks_cluster.ray.identity[0].oidc[0].issuer}"
    assert public_with_admins.has_resource(IamOpenidConnectProvider, {"url": issuer,
                                                                      "client_id_list": ["sts.amazonaws.com"]})
    assert public_with_admins.output("oidc_provider_arn") == ref("aws_iam_openid_connect_provider", "eks", "arn")
    assert public_with_admins.output("oidc_issuer_host") == f'${{replace({issuer[2:-1]}, "https://", "")}}'


def test_alone_private_without_admins_has_no_public_endpoint_and_no_entries(private_alone):
    vpc = private_alone.one("aws_eks_cluster", "ray")["vpc_config"]
    assert vpc["endpoint_public_access"] is False and "public_access_cidrs" not in vpc
    assert vpc["endpoint_private_access"] is True
    assert not private_alone.resources("aws_eks_access_entry")
    assert not private_alone.resources("aws_eks_access_policy_association")
    assert not private_alone.data("aws_iam_session_context")


def test_alone_private_networks_reach_the_api_on_443_only(private_alone, public_with_admins):
    rules = private_alone.resources("aws_vpc_security_group_ingress_rule")
    assert {n: (r["cidr_ipv4"], r["ip_protocol"], r["from_port"], r["to_port"], r["security_group_id"])
            for n, r in rules.items()} == {
        f"cluster_api_from_private_{i}": (cidr, "tcp", 443, 443,
                                          "${aws_eks_cluster.ray.vpc_config[0].cluster_security_group_id}")
        for i, cidr in enumerate(["10.100.0.0/16", "192.168.8.0/24"])}
    assert not public_with_admins.resources("aws_vpc_security_group_ingress_rule")
