"""The EKS managed add-ons every cluster gets, in the order terraform-aws-eks installs them.

Config validates ``cluster.addon_versions`` keys against these names; the infra stack creates the first
group before the node groups (which wait for them) and the second once nodes exist.
"""

from __future__ import annotations

from conventions.kubernetes import CORE_ROLE, node_selector

# The nodes need these to join and to run pods (vpc-cni: pod networking; kube-proxy: Service routing;
# eks-pod-identity-agent: credentials from the first minute). DaemonSets: ACTIVE with no nodes yet.
ADDONS_BEFORE_COMPUTE = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# Deployments: they need schedulable nodes or they sit DEGRADED until the create times out.
ADDONS_AFTER_COMPUTE = ("coredns", "aws-fsx-csi-driver")
EKS_ADDONS = ADDONS_BEFORE_COMPUTE + ADDONS_AFTER_COMPUTE
# CloudWatch Container Insights, installed by the ray stack when observability.container_insights is on.
CONTAINER_INSIGHTS_ADDON = "amazon-cloudwatch-observability"

# Add-on configuration: values the add-on's configuration JSON schema accepts (aws eks describe-addon-configuration),
# which EKS merges over the add-on's chart defaults. Plain data, so that scripts/preflight.py checks it against EKS
# without loading cdktf; constructs_lib/eks_addons.py installs it. tests/reference/eks-addons/<add-on>.yaml records
# the part of each schema these rely on, and tests/cluster_model renders them.
ADDON_CONFIGURATION: dict[str, dict] = {
    # Its network policy agent enforces NetworkPolicies (the ray-cluster stack's policy on the Ray head); the value
    # is the string "true" (EKS user guide, cni-network-policy).
    "vpc-cni": {"enableNetworkPolicy": "true"},
    # The add-ons' Deployments run on the core group. They tolerate no taint of ours, so without a selector they
    # would also go to any untainted worker group (SPOT nodes that cluster-autoscaler removes when Ray scales in).
    "coredns": {"nodeSelector": node_selector(CORE_ROLE)},
    "aws-fsx-csi-driver": {"controller": {"nodeSelector": node_selector(CORE_ROLE)}},
    CONTAINER_INSIGHTS_ADDON: {"manager": {"nodeSelector": node_selector(CORE_ROLE)}},
}
# The Container Insights add-on runs a DCGM exporter of its own on GPU nodes (its chart's dcgmExporter.enabled,
# default true: aws-observability/helm-charts amazon-cloudwatch-observability-6.4.0 values.yaml and
# templates/linux/dcgm-exporter-daemonset.yaml, recorded in tests/reference/eks-addons/). Beside ours
# (observability.dcgm_exporter) two exporters would each run a DCGM host engine on one GPU, and DCGM's profiling
# metrics (DCGM_FI_PROF_*, which our dashboards and the idle-GPU alert read) admit one watcher per GPU: one of the two
# would report none. Ours feeds Prometheus, the dashboards and alerts, so with both on the add-on's is turned off;
# CloudWatch then gets no GPU metrics of its own, the rest of Container Insights (node and pod metrics, logs) stays.
CONTAINER_INSIGHTS_WITHOUT_DCGM = {"dcgmExporter": {"enabled": False}}


def addon_configuration(name: str, *, dcgm_exporter: bool = False) -> dict | None:
    """An add-on's configuration values as this deployment installs it (``dcgm_exporter``: ours is on)."""
    values = ADDON_CONFIGURATION.get(name)
    if name == CONTAINER_INSIGHTS_ADDON and dcgm_exporter:
        values = {**(values or {}), **CONTAINER_INSIGHTS_WITHOUT_DCGM}
    return values
