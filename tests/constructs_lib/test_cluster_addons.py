"""The Helm-installed cluster add-ons, alone from their props (``construct_synth``): the NVIDIA device plugin only
when asked for, and cluster-autoscaler discovering this cluster's groups with its own IRSA role."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_helm.release import Release

from constructs_lib.cluster_addons import ClusterAddons, ClusterAddonsProps
from tests.helpers import ref

OIDC_ARN = "arn:aws:iam::111122223333:oidc-provider/oidc.x/id/A"


def _props(**kw) -> ClusterAddonsProps:
    base = dict(cluster_name="unit-cluster", autoscaler_role_name_prefix="unit-autoscaler-", region="eu-west-1",
                cluster_autoscaler_image_tag="v1.34.1", oidc_provider_arn=OIDC_ARN, oidc_issuer_host="oidc.x/id/A",
                nvidia_device_plugin_version="0.17.4", cluster_autoscaler_version="9.50.1", install_device_plugin=True)
    return ClusterAddonsProps(**{**base, **kw})


@pytest.fixture(scope="module")
def with_gpus(construct_synth):
    return construct_synth(lambda stack: ClusterAddons(stack, "addons", _props()), providers=("aws", "helm"))


def _values(synth, name: str) -> dict:
    (values,) = synth.one("helm_release", name)["values"]
    return json.loads(values)


def test_device_plugin_pinned_on_gpu_nodes_only(with_gpus):
    assert with_gpus.has_resource(Release, {"name": "nvidia-device-plugin", "namespace": "kube-system",
                                            "repository": "https://nvidia.github.io/k8s-device-plugin",
                                            "chart": "nvidia-device-plugin", "version": "0.17.4"})
    values = _values(with_gpus, "nvidia_device_plugin")
    assert values["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and values["affinity"] is None
    assert values["tolerations"] == [{"operator": "Exists"}]


def test_no_device_plugin_unless_asked_for(construct_synth):
    cpu_only = construct_synth(lambda stack: ClusterAddons(stack, "addons", _props(install_device_plugin=False)),
                               providers=("aws", "helm"))
    assert list(cpu_only.resources("helm_release")) == ["cluster_autoscaler"]


def test_autoscaler_discovers_the_props_cluster_with_its_irsa_role(with_gpus):
    assert with_gpus.has_resource(Release, {"name": "cluster-autoscaler", "namespace": "kube-system",
                                            "chart": "cluster-autoscaler", "version": "9.50.1"})
    values = _values(with_gpus, "cluster_autoscaler")
    assert (values["awsRegion"], values["autoDiscovery"], values["image"]) == (
        "eu-west-1", {"clusterName": "unit-cluster"}, {"tag": "v1.34.1"})
    assert values["rbac"]["serviceAccount"] == {
        "create": True, "name": "cluster-autoscaler",
        "annotations": {"eks.amazonaws.com/role-arn": ref("aws_iam_role", "cluster_autoscaler", "arn")}}
    assert (values["nodeSelector"], values["tolerations"]) == ({"usage": "core"}, [])
    trust = json.loads(with_gpus.one("aws_iam_role", "cluster_autoscaler")["assume_role_policy"])["Statement"][0]
    sub = trust["Condition"]["StringEquals"]["oidc.x/id/A:sub"]
    assert sub == "system:serviceaccount:kube-system:cluster-autoscaler"


def test_autoscaler_changes_capacity_of_this_clusters_groups_only(with_gpus):
    policy = json.loads(with_gpus.one("aws_iam_role_policy", "cluster_autoscaler")["policy"])
    scale = next(s for s in policy["Statement"] if s["Sid"] == "ScaleOwnGroups")
    assert scale["Action"] == ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert scale["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/unit-cluster": "owned"}}
    unconditioned = {a for s in policy["Statement"] if "Condition" not in s for a in s["Action"]}
    assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in unconditioned), unconditioned


def _allowed(policy: dict, action: str, resource: str) -> bool:
    """IAM's Allow for one action on one resource ARN (wildcards * and ?; the statements here have no conditions)."""
    import fnmatch

    def hits(patterns, value: str) -> bool:
        return any(fnmatch.fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns))

    return any(s["Effect"] == "Allow" and "Condition" not in s and hits(s["Action"], action)
               and hits(s["Resource"], resource) for s in policy["Statement"])


def test_scale_from_zero_reads_this_clusters_node_groups_from_eks(with_gpus):
    """A group at zero nodes has no node to copy labels and taints from; EKS tags its Auto Scaling group with
    eks:nodegroup-name only (the node-template tags stay on the node group), so cluster-autoscaler builds the
    template from eks:DescribeNodegroup. The role may call it on every node group of this cluster (ARNs as EKS
    writes them), and on no other cluster's."""
    policy = json.loads(with_gpus.one("aws_iam_role_policy", "cluster_autoscaler")["policy"])
    ours = "arn:aws:eks:eu-west-1:111122223333:nodegroup/unit-cluster/gpu-20261201/6ec9e5c6-0d9f-1c2c-bb6e-8f1a8a1f7a3c"
    assert _allowed(policy, "eks:DescribeNodegroup", ours)
    assert not _allowed(policy, "eks:DescribeNodegroup", ours.replace("/unit-cluster/", "/other-cluster/"))
    assert not _allowed(policy, "eks:DescribeNodegroup", ours.replace("eu-west-1", "us-east-1"))
    assert not _allowed(policy, "eks:UpdateNodegroupConfig", ours)
