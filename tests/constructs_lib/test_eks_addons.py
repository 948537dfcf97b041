"""EKS managed add-ons, alone from their props (``construct_synth``) and through the infra stack's JSON: the five
add-ons, their order relative to the node groups (terraform-aws-eks's before_compute), their versions per Kubernetes
version, and the FSx CSI driver's IRSA role."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_eks_addon_version import DataAwsEksAddonVersion
from cdktf_cdktf_provider_aws.eks_addon import EksAddon

from constructs_lib.eks_addons import EksAddons, EksAddonsProps
from tests.helpers import EDGE_PINNED_ADDON, attrs, one, ref, resources, tf_json

REQUIRED = {"vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-fsx-csi-driver"}
# Deployments: they need schedulable nodes, or they sit DEGRADED until the create times out.
AFTER_NODES = {"coredns", "aws-fsx-csi-driver"}
# The nodes need these to become Ready and run pods (terraform-aws-eks: before_compute).
BEFORE_NODES = {"vpc-cni", "kube-proxy", "eks-pod-identity-agent"}


def _addons(stack: dict) -> dict[str, dict]:
    """add-on name -> resource address and body."""
    out = {}
    for rname, body in resources(stack, "aws_eks_addon").items():
        body = attrs(body)
        assert body["addon_name"] not in out, f"{body['addon_name']} declared twice"
        out[body["addon_name"]] = {"address": f"aws_eks_addon.{rname}", **body}
    return out


def _node_group_addresses(stack: dict) -> set[str]:
    return {f"aws_eks_node_group.{n}" for n in resources(stack, "aws_eks_node_group")}


def test_required_addons_installed(shape):
    addons = _addons(shape.infra)
    assert set(addons) >= REQUIRED, f"missing {sorted(REQUIRED - set(addons))}"
    for name, a in addons.items():
        assert a["cluster_name"] == ref("aws_eks_cluster", "ray", "name"), name


def test_workload_addons_wait_for_every_node_group(shape):
    addons, groups = _addons(shape.infra), _node_group_addresses(shape.infra)
    assert groups
    for name in AFTER_NODES:
        assert groups <= set(addons[name].get("depends_on", [])), f"{name} must be created after the node groups"


def test_cni_does_not_wait_for_nodes(shape):
    addons = _addons(shape.infra)
    for name in BEFORE_NODES:
        deps = set(addons[name].get("depends_on", []))
        assert not deps & _node_group_addresses(shape.infra), f"{name} waits for nodes that cannot be Ready without it"


def test_fsx_csi_driver_uses_irsa_role(shape):
    fsx = _addons(shape.infra)["aws-fsx-csi-driver"]
    role_ref = fsx["service_account_role_arn"]
    assert role_ref.startswith("${aws_iam_role.") and role_ref.endswith(".arn}")
    role = attrs(one(shape.infra, "aws_iam_role", role_ref.split(".")[1]))
    (stmt,) = tf_json(role["assume_role_policy"])["Statement"]
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert stmt["Principal"] == {"Federated": ref("aws_iam_openid_connect_provider", "eks", "arn")}
    cond = stmt["Condition"]["StringEquals"]
    subs = [v for k, v in cond.items() if k.endswith(":sub")]
    auds = [v for k, v in cond.items() if k.endswith(":aud")]
    # Only the driver's controller service account may assume the role.
    assert subs == ["system:serviceaccount:kube-system:fsx-csi-controller-sa"]
    assert auds == ["sts.amazonaws.com"]
    assert all("aws_eks_cluster.ray.identity[0].oidc[0].issuer" in k for k in cond)


def test_node_groups_wait_for_the_networking_addons(shape):
    """Without the edge a node group can start before vpc-cni exists: its nodes never become Ready."""
    addons = _addons(shape.infra)
    assert resources(shape.infra, "aws_eks_node_group")
    for name, group in resources(shape.infra, "aws_eks_node_group").items():
        deps = set(attrs(group).get("depends_on", []))
        for addon in BEFORE_NODES:
            assert addons[addon]["address"] in deps, f"node group {name} does not wait for {addon}"


def test_versions_resolved_for_the_clusters_kubernetes_version(shape):
    """Unpinned add-ons take the newest build for the configured Kubernetes version, read at plan time."""
    pinned = shape.cfg.cluster.addon_versions
    data = shape.infra.get("data", {}).get("aws_eks_addon_version", {})
    assert set(_addons(shape.infra)) >= REQUIRED
    for name, a in _addons(shape.infra).items():
        key = name.replace("-", "_")
        if name in pinned:
            assert a["addon_version"] == pinned[name] and key not in data, name
            continue
        assert a["addon_version"] == f"${{data.aws_eks_addon_version.{key}.version}}", name
        d = attrs(data[key])
        # The config's version, not the cluster's attribute: known at plan, so the plan shows each version.
        assert (d["addon_name"], d["kubernetes_version"], d["most_recent"]) == \
            (name, shape.cfg.cluster.kubernetes_version, True)


def test_a_pinned_version_is_used_as_is(edge_shape):
    name, version = EDGE_PINNED_ADDON
    assert _addons(edge_shape.infra)[name]["addon_version"] == version
    assert name.replace("-", "_") not in edge_shape.infra["data"]["aws_eks_addon_version"]


def test_addon_deployments_select_the_core_group(shape):
    """CoreDNS and the FSx CSI controller tolerate no taint of ours: their configuration selects the core group, or
    they would also run on an untainted worker group (tests/cluster_model proves where they land)."""
    addons = _addons(shape.infra)
    core = {"usage": "core"}
    assert tf_json(addons["coredns"]["configuration_values"]) == {"nodeSelector": core}
    assert tf_json(addons["aws-fsx-csi-driver"]["configuration_values"]) == {"controller": {"nodeSelector": core}}
    for name in BEFORE_NODES - {"vpc-cni"}:  # DaemonSets on every node: nothing to select
        assert addons[name].get("configuration_values") is None, name


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
ALONE = EksAddonsProps(cluster_name="unit-cluster", kubernetes_version="1.34",
                       oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/oidc.example/id/ABC",
                       oidc_issuer_host="oidc.example/id/ABC", fsx_csi_role_name_prefix="unit-fsx-csi-",
                       versions={"vpc-cni": "v1.20.4-eksbuild.2", "coredns": "v1.12.4-eksbuild.1"},
                       vpc_cni_role_name_prefix="unit-vpc-cni-", partition="aws-cn")


@pytest.fixture(scope="module")
def alone(construct_synth):
    def build(stack):
        addons = EksAddons(stack, "addons", ALONE)
        # A stand-in for the node groups: what the add-ons with Deployments must wait for.
        nodes = CloudwatchLogGroup(stack, "nodes", name="stand-in-for-the-node-groups")
        addons.after_compute([nodes])
        return addons
    return construct_synth(build, outputs=("fsx_csi_role_arn",))


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_alone_every_addon_on_the_props_cluster_overwriting_conflicts(alone, name):
    assert alone.has_resource(EksAddon, {"cluster_name": "unit-cluster", "addon_name": name,
                                         "resolve_conflicts_on_create": "OVERWRITE",
                                         "resolve_conflicts_on_update": "OVERWRITE"})
    assert len(alone.resources("aws_eks_addon")) == len(REQUIRED)


def test_alone_pinned_versions_as_given_the_others_the_newest_for_the_kubernetes_version(alone):
    for name, version in ALONE.versions.items():
        assert alone.has_resource(EksAddon, {"addon_name": name, "addon_version": version})
    unpinned = REQUIRED - set(ALONE.versions)
    assert sorted(alone.data("aws_eks_addon_version")) == sorted(n.replace("-", "_") for n in unpinned)
    for name in unpinned:
        key = name.replace("-", "_")
        assert alone.has_data_source(DataAwsEksAddonVersion, {"addon_name": name, "kubernetes_version": "1.34",
                                                              "most_recent": True})
        assert alone.has_resource(EksAddon, {"addon_name": name,
                                             "addon_version": f"${{data.aws_eks_addon_version.{key}.version}}"})


def test_alone_networking_first_deployments_after_the_nodes(alone):
    by_name = {a["addon_name"]: a for a in alone.resources("aws_eks_addon").values()}
    assert {n for n, a in by_name.items() if "depends_on" not in a} == BEFORE_NODES - {"vpc-cni"}
    assert by_name["vpc-cni"]["depends_on"] == ["aws_iam_role_policy_attachment.vpc_cni"]
    for name in AFTER_NODES:
        assert by_name[name]["depends_on"] == ["aws_cloudwatch_log_group.nodes"], name
    assert len(alone.construct.before_compute) == len(BEFORE_NODES)  # what the node groups are to wait for


def test_alone_fsx_csi_driver_runs_as_its_controllers_irsa_role(alone):
    assert alone.has_resource(EksAddon, {"addon_name": "aws-fsx-csi-driver",
                                         "service_account_role_arn": ref("aws_iam_role", "fsx_csi_driver", "arn")})
    assert alone.output("fsx_csi_role_arn") == ref("aws_iam_role", "fsx_csi_driver", "arn")
    role = alone.one("aws_iam_role", "fsx_csi_driver")
    assert role["name_prefix"] == "unit-fsx-csi-"
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Principal"] == {"Federated": ALONE.oidc_provider_arn}
    assert trust["Condition"] == {"StringEquals": {
        "oidc.example/id/ABC:sub": "system:serviceaccount:kube-system:fsx-csi-controller-sa",
        "oidc.example/id/ABC:aud": "sts.amazonaws.com"}}
    (policy,) = json.loads(alone.one("aws_iam_role_policy", "fsx_csi_driver_policy")["policy"])["Statement"]
    assert (policy["Action"], policy["Resource"]) == (["fsx:DescribeFileSystems"], "*")


def test_alone_vpc_cni_runs_as_its_irsa_role_with_the_cni_policy(alone):
    """AmazonEKS_CNI_Policy on aws-node's IRSA role (AWS's recommendation), not on the node roles."""
    assert alone.has_resource(EksAddon, {"addon_name": "vpc-cni",
                                         "service_account_role_arn": ref("aws_iam_role", "vpc_cni", "arn")})
    role = alone.one("aws_iam_role", "vpc_cni")
    assert role["name_prefix"] == "unit-vpc-cni-"
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Principal"] == {"Federated": ALONE.oidc_provider_arn}
    assert trust["Condition"] == {"StringEquals": {
        "oidc.example/id/ABC:sub": "system:serviceaccount:kube-system:aws-node",
        "oidc.example/id/ABC:aud": "sts.amazonaws.com"}}
    (attachment,) = alone.resources("aws_iam_role_policy_attachment").values()
    assert attachment == {**attachment, "role": ref("aws_iam_role", "vpc_cni", "name"),
                          "policy_arn": "arn:aws-cn:iam::aws:policy/AmazonEKS_CNI_Policy"}


def test_alone_after_compute_once(alone):
    with pytest.raises(RuntimeError, match="twice"):
        alone.construct.after_compute([])
