"""Karpenter's names the platform relies on (cluster.autoscaler: karpenter), at the version config/versions.py pins
(aws/karpenter-provider-aws v1.14.1): its namespace and service account, the tag that lets it find subnets and
security groups, the labels it puts on its nodes, and the API groups of its custom resources.

The infra stack creates its AWS side (constructs_lib/karpenter.py KarpenterAws), the ray stack its controller (Helm),
the ray-cluster stack one EC2NodeClass and one NodePool per gpu/cpu node group (constructs_lib/manifests/karpenter.py).
"""

from __future__ import annotations

# The controller runs in kube-system under this service account (the getting-started guide's KARPENTER_NAMESPACE;
# the chart names the account after its release, "karpenter"): its IRSA role trusts exactly this account.
NAMESPACE = "kube-system"
RELEASE = "karpenter"
SERVICE_ACCOUNT = "karpenter"
CHART_REPOSITORY = "oci://public.ecr.aws/karpenter"
CHART, CRD_CHART = "karpenter", "karpenter-crd"

# The tag the EC2NodeClass's subnet and security group selectors look for, valued with the cluster's name (the
# getting-started guide's karpenter.sh/discovery): the private subnets and the cluster security group carry it.
DISCOVERY_TAG = "karpenter.sh/discovery"

# Custom resources (karpenter.sh_nodepools.yaml, karpenter.k8s.aws_ec2nodeclasses.yaml: served version v1).
NODEPOOL_API_VERSION = "karpenter.sh/v1"
NODECLASS_GROUP = "karpenter.k8s.aws"
NODECLASS_API_VERSION = f"{NODECLASS_GROUP}/v1"

# Labels Karpenter puts on the nodes it launches (sigs.k8s.io/karpenter pkg/apis/v1/labels.go; values of the
# capacity type: on-demand, spot, reserved).
NODEPOOL_LABEL = "karpenter.sh/nodepool"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
# A managed node group's capacity_type as Karpenter's capacity types: with both, Karpenter launches Spot and falls
# back to On-Demand when no Spot offering is available (website/content/en/v1.14/concepts/nodepools.md
# "karpenter.sh/capacity-type": "prioritizes Spot").
CAPACITY_TYPES = {"ON_DEMAND": ("on-demand",), "SPOT": ("spot",), "SPOT_OR_ON_DEMAND": ("spot", "on-demand")}

# The AMI family of every Karpenter node here, at a pinned release: `al2023@<release>` resolves the standard and the
# NVIDIA variant and gives each instance type the one that fits (pkg/providers/amifamily/al2023.go).
AMI_ALIAS_FAMILY = "al2023"


def ami_alias(release: str) -> str:
    return f"{AMI_ALIAS_FAMILY}@{release}"

# How the NodePools here let Karpenter take nodes away (website/content/en/v1.14/concepts/disruption.md):
# - consolidation WhenEmpty: a node goes once no pod but DaemonSets runs there (the Ray autoscaler removes idle
#   workers), after this long, as cluster-autoscaler's scale-down-unneeded-time here; never an occupied node (the
#   Ray pods' karpenter.sh/do-not-disrupt covers drift too);
# - expireAfter (Karpenter's default): a node lives at most 30 days, so it picks up a new AMI; expiration is forceful
#   and waits for do-not-disrupt pods, so terminationGracePeriod bounds how long a busy Ray node can hold it (and a
#   drifted node's drain) before Karpenter deletes its pods anyway.
CONSOLIDATE_AFTER = "5m"
EXPIRE_AFTER = "720h"
TERMINATION_GRACE_PERIOD = "24h"
