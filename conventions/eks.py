"""The EKS managed add-ons every cluster gets, in the order terraform-aws-eks installs them.

Config validates ``cluster.addon_versions`` keys against these names; the infra stack creates the first
group before the node groups (which wait for them) and the second once nodes exist.
"""

from __future__ import annotations

# The nodes need these to join and to run pods (vpc-cni: pod networking; kube-proxy: Service routing;
# eks-pod-identity-agent: credentials from the first minute). DaemonSets: ACTIVE with no nodes yet.
ADDONS_BEFORE_COMPUTE = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# Deployments: they need schedulable nodes or they sit DEGRADED until the create times out.
ADDONS_AFTER_COMPUTE = ("coredns", "aws-fsx-csi-driver")
EKS_ADDONS = ADDONS_BEFORE_COMPUTE + ADDONS_AFTER_COMPUTE
# CloudWatch Container Insights, installed by the ray stack when observability.container_insights is on.
CONTAINER_INSIGHTS_ADDON = "amazon-cloudwatch-observability"
