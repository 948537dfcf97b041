"""Karpenter's custom resources for one worker node group (cluster.autoscaler: karpenter): an EC2NodeClass (how its
instances launch) and a NodePool (which instances, the labels and taints of their nodes, how far it grows, when
nodes go). Plain API objects; tests validate them against the v1.14.1 CRD schemas (tests/reference/karpenter-v1.14.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conventions import karpenter as k


@dataclass(frozen=True)
class NodePoolProps:
    name: str  # the node group's name: the NodePool's and the EC2NodeClass's (both cluster-scoped)
    labels: dict[str, str]  # every node's labels: role, node group, GPU labels, the group's own
    taints: list[dict[str, str]]  # Kubernetes spelling: {key, value, effect: NoSchedule|NoExecute|PreferNoSchedule}
    instance_types: list[str]
    capacity_types: tuple[str, ...]  # Karpenter's: on-demand, spot
    # spec.limits: the group's max_size in nodes of its largest type (cpu, memory, nvidia.com/gpu)
    limits: dict[str, str]
    disk_size_gib: int
    cluster_name: str  # the discovery tag's value on the cluster's private subnets and security group
    instance_profile: str  # the infra stack's node instance profile (no role: Karpenter then needs no IAM writes)
    ami_release: str  # the AL2023 EKS AMI release (config/versions.py KARPENTER_AMI_RELEASE)
    # The Ray workers' terminationGracePeriodSeconds: the NodePool's terminationGracePeriod (conventions/karpenter.py)
    worker_grace_seconds: int
    # On every instance, volume and network interface (default_tags do not reach what Karpenter launches).
    tags: dict[str, str] = field(default_factory=dict)


def ec2_node_class(p: NodePoolProps) -> dict:
    """AL2023 (standard or NVIDIA, by instance type) at a pinned release, the private subnets and the cluster security
    group by discovery tag, IMDSv2 with one hop (pods cannot borrow the node role), an encrypted gp3 root volume."""
    discovery = {"tags": {k.DISCOVERY_TAG: p.cluster_name}}
    return {
        "apiVersion": k.NODECLASS_API_VERSION,
        "kind": "EC2NodeClass",
        "metadata": {"name": p.name},
        "spec": {
            "amiSelectorTerms": [{"alias": k.ami_alias(p.ami_release)}],
            "instanceProfile": p.instance_profile,
            "subnetSelectorTerms": [dict(discovery)],
            "securityGroupSelectorTerms": [dict(discovery)],
            "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                "httpPutResponseHopLimit": 1, "httpTokens": "required"},
            "blockDeviceMappings": [{
                "deviceName": "/dev/xvda",  # AL2023's root volume
                "ebs": {"volumeSize": f"{p.disk_size_gib}Gi", "volumeType": "gp3", "encrypted": True,
                        "deleteOnTermination": True},
            }],
            "tags": {**p.tags, "Name": f"{p.cluster_name}-{p.name}"},
        },
    }


def node_pool(p: NodePoolProps) -> dict:
    """Nodes of exactly the group's instance types and purchase options, labelled and tainted like a managed group's
    nodes, at most the group's max_size (limits), removed only once empty; a node deleted anyway gives its Ray
    workers their grace period, then goes (conventions/karpenter.py)."""
    template_spec: dict = {
        "nodeClassRef": {"group": k.NODECLASS_GROUP, "kind": "EC2NodeClass", "name": p.name},
        "requirements": [
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(p.instance_types)},
            {"key": k.CAPACITY_TYPE_LABEL, "operator": "In", "values": list(p.capacity_types)},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        ],
        "expireAfter": k.EXPIRE_AFTER,
        "terminationGracePeriod": k.termination_grace_period(p.worker_grace_seconds),
    }
    if p.taints:
        template_spec["taints"] = [dict(t) for t in p.taints]
    return {
        "apiVersion": k.NODEPOOL_API_VERSION,
        "kind": "NodePool",
        "metadata": {"name": p.name},
        "spec": {
            "template": {"metadata": {"labels": dict(p.labels)}, "spec": template_spec},
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": k.CONSOLIDATE_AFTER,
                           "budgets": k.disruption_budgets()},
            "limits": dict(p.limits),
        },
    }
