"""Cluster add-ons the Ray platform needs, installed with Helm:

- NVIDIA device plugin, on every GPU node and only there (managed groups and Karpenter's alike), so pods can request
  nvidia.com/gpu;
- cluster-autoscaler with its own IRSA role, discovering node groups by their tags, so the pods the
  Ray autoscaler creates get nodes (including GPU groups scaled to zero); not with Karpenter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_helm.release import Release
from constructs import Construct

from conventions.kubernetes import CORE_ROLE, GPU_PRESENT_LABEL, node_selector

from .iam import policy_document, statement
from .irsa_role import IrsaRole, IrsaRoleProps

NVIDIA_REPO = "https://nvidia.github.io/k8s-device-plugin"
AUTOSCALER_REPO = "https://kubernetes.github.io/autoscaler"
AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"


def device_plugin_values() -> dict:
    """The NVIDIA device plugin's DaemonSet on every GPU node, and only there.

    The chart's default affinity requires NFD/GFD labels (off here) or nvidia.com/gpu.present; `affinity: null`
    deletes that default (Helm merges maps, so `{}` would keep it) and the nodeSelector picks GPU nodes by the
    label our GPU node groups carry. It tolerates every taint: a GPU node without it never advertises
    nvidia.com/gpu, and its GPU pods stay Pending while cluster-autoscaler adds more such nodes. Node-critical, so
    a full node still admits it.
    """
    return {
        "nodeSelector": {GPU_PRESENT_LABEL: "true"},
        "affinity": None,
        "tolerations": [{"operator": "Exists"}],
        "priorityClassName": "system-node-critical",
    }


def autoscaler_placement() -> dict:
    """cluster-autoscaler on the core nodes only (it must not run on nodes it may remove), as the chart's default
    cluster-critical priority; no tolerations, no affinity."""
    return {"nodeSelector": node_selector(CORE_ROLE), "tolerations": [], "affinity": {},
            "priorityClassName": "system-cluster-critical"}


def nodegroup_arns(region: str, cluster_name: str) -> str:
    """Every managed node group of the cluster (arn:<partition>:eks:<region>:<account>:nodegroup/<cluster>/<name>/<id>,
    Service Authorization Reference, Amazon EKS resource type nodegroup)."""
    return f"arn:*:eks:{region}:*:nodegroup/{cluster_name}/*"


@dataclass(frozen=True)
class ClusterAddonsProps:
    cluster_name: str
    autoscaler_role_name_prefix: str
    region: str
    cluster_autoscaler_image_tag: str  # its minor version matches the cluster's Kubernetes
    oidc_provider_arn: str
    oidc_issuer_host: str
    nvidia_device_plugin_version: str
    cluster_autoscaler_version: str
    install_device_plugin: bool
    # False with Karpenter (cluster.autoscaler: karpenter): it adds the worker nodes instead (constructs_lib/karpenter).
    install_cluster_autoscaler: bool = True


class ClusterAddons(Construct):
    def __init__(self, scope: Construct, id: str, props: ClusterAddonsProps) -> None:
        super().__init__(scope, id)
        if props.install_device_plugin:
            Release(self, "nvidia_device_plugin", name="nvidia-device-plugin", namespace="kube-system",
                    repository=NVIDIA_REPO, chart="nvidia-device-plugin", version=props.nvidia_device_plugin_version,
                    values=[json.dumps(device_plugin_values())])

        if props.install_cluster_autoscaler:
            self._cluster_autoscaler(props)

    def _cluster_autoscaler(self, props: ClusterAddonsProps) -> None:
        tag = f"aws:ResourceTag/k8s.io/cluster-autoscaler/{props.cluster_name}"
        role = IrsaRole(self, "cluster_autoscaler", IrsaRoleProps(
            role_name_prefix=props.autoscaler_role_name_prefix,
            oidc_provider_arn=props.oidc_provider_arn, oidc_issuer_host=props.oidc_issuer_host,
            namespace="kube-system", service_account=AUTOSCALER_SERVICE_ACCOUNT, policy_name="cluster-autoscaler",
            policy_json=policy_document([
                # Changing capacity only on this cluster's groups (their ASGs carry the owned tag).
                statement(["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                          ["*"], sid="ScaleOwnGroups", condition={"StringEquals": {tag: "owned"}}),
                # Describe calls are account-wide by API design (no resource-level permissions).
                statement(["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                           "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
                           "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
                           "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements"],
                          ["*"], sid="Describe"),
                # Scale from zero: a group with no node gets its labels and taints from here. EKS tags the Auto
                # Scaling group with eks:nodegroup-name/eks:cluster-name only; the node-template tags on the node
                # group never reach it, so cluster-autoscaler asks EKS (kubernetes/autoscaler@00a2c93c
                # cluster-autoscaler/cloudprovider/aws/aws_manager.go buildNodeFromTemplate: DescribeNodegroup).
                statement(["eks:DescribeNodegroup"], [nodegroup_arns(props.region, props.cluster_name)],
                          sid="ScaleFromZeroTemplates"),
            ]),
        ))
        Release(Construct(self, "release"), "cluster_autoscaler", name="cluster-autoscaler", namespace="kube-system",
                repository=AUTOSCALER_REPO, chart="cluster-autoscaler", version=props.cluster_autoscaler_version,
                values=[json.dumps({
                    "cloudProvider": "aws",
                    "awsRegion": props.region,
                    "autoDiscovery": {"clusterName": props.cluster_name},
                    "image": {"tag": props.cluster_autoscaler_image_tag},
                    "rbac": {"serviceAccount": {"create": True, "name": AUTOSCALER_SERVICE_ACCOUNT,
                                                "annotations": {"eks.amazonaws.com/role-arn": role.role_arn}}},
                    **autoscaler_placement(),
                    "extraArgs": {
                        "balance-similar-node-groups": True,
                        "skip-nodes-with-system-pods": False,
                        "expander": "least-waste",
                        # Ray pods come and go in bursts; don't flap GPU nodes.
                        "scale-down-unneeded-time": "5m",
                    },
                })])
