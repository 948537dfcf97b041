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
# back to On-Demand when no Spot offering is available (v1.14.1 website/content/en/preview/concepts/nodepools.md
# "karpenter.sh/capacity-type": "prioritizes Spot").
CAPACITY_TYPES = {"ON_DEMAND": ("on-demand",), "SPOT": ("spot",), "SPOT_OR_ON_DEMAND": ("spot", "on-demand")}

# The AMI family of every Karpenter node here, at a pinned release: `al2023@<release>` resolves the standard and the
# NVIDIA variant and gives each instance type the one that fits (pkg/providers/amifamily/al2023.go).
AMI_ALIAS_FAMILY = "al2023"


def ami_alias(release: str) -> str:
    return f"{AMI_ALIAS_FAMILY}@{release}"

# How the NodePools here let Karpenter take nodes away (aws/karpenter-provider-aws v1.14.1
# website/content/en/preview/concepts/disruption.md: the tag keeps v1.14's docs under preview/, main copies them to
# website/content/en/v1.14/ at release; the code cited is sigs.k8s.io/karpenter at the commit v1.14.1's go.mod pins,
# v1.14.1-0.20260819221709-6e7eab7a0f48):
# - consolidation WhenEmpty: a node goes once no pod but DaemonSets runs there (the Ray autoscaler removes idle
#   workers), after this long, as cluster-autoscaler's scale-down-unneeded-time here. Consolidation is "graceful"
#   disruption: it never takes a node with a karpenter.sh/do-not-disrupt pod (every Ray pod carries it).
# - drift (a changed NodePool, EC2NodeClass or AMI release) is "eventual" disruption: once a NodePool sets
#   terminationGracePeriod, a node whose pods block eviction is a drift candidate all the same
#   (pkg/controllers/disruption/types.go NewCandidate, eventualDisruptionCandidate). A budget of 0 nodes for
#   Drifted stops that: a drifted node keeps running its Ray pods and goes, like any node, once empty; its
#   successor matches the new spec. The default budget (10%) still paces the other reasons.
# - expireAfter Never: expiration is forceful (no budget, no do-not-disrupt), so a 30-day default would delete a
#   node under a running job. Nodes get a new AMI when replaced (drift above), never by age.
# - terminationGracePeriod: how long a node being deleted anyway (Spot interruption, node repair,
#   `kubectl delete node`/nodeclaim) may take. The terminator deletes each pod at the node's deadline minus the pod's
#   terminationGracePeriodSeconds, do-not-disrupt or not (pkg/controllers/node/termination/terminator/terminator.go
#   Drain, DeleteExpiringPods, podDeleteTimeWithGracePeriod; the deadline is the NodeClaim's deletion time plus
#   this, pkg/controllers/nodeclaim/lifecycle/controller.go), then terminates the instance. Equal to the Ray
#   workers' grace period (conventions.ray.worker_termination_grace_seconds, 90 s by default), a worker gets SIGTERM
#   at once and its whole drain, and the node goes right after; without it do-not-disrupt would hold the drain
#   forever (pkg/utils/pod/scheduling.go IsEvictable). It fits Spot's two-minute notice.
CONSOLIDATE_AFTER = "5m"
EXPIRE_AFTER = "Never"
DRIFT_REASON = "Drifted"


def disruption_budgets() -> list[dict]:
    """The CRD's default budget (10%), kept for the other reasons, and none for drift. Fresh each call."""
    return [{"nodes": "10%"}, {"nodes": "0", "reasons": [DRIFT_REASON]}]


def termination_grace_period(worker_grace_seconds: int) -> str:
    """The NodePool's terminationGracePeriod (a duration, ^([0-9]+(s|m|h))+$) for pods of this grace period."""
    return f"{worker_grace_seconds}s"
