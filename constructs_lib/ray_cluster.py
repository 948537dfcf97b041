"""The RayCluster as a kubernetes_manifest: the API object itself, as KubeRay's samples write it; and the
NetworkPolicy that decides who reaches its head.

Lives in its own stack (ray-cluster): kubernetes_manifest needs the CRD at plan time, which exists
only after the ray stack's operator release applied.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_kubernetes.manifest import Manifest, ManifestFieldManager, ManifestTimeouts, ManifestWait
from cdktf_cdktf_provider_kubernetes.network_policy_v1 import (
    NetworkPolicyV1,
    NetworkPolicyV1Metadata,
    NetworkPolicyV1Spec,
    NetworkPolicyV1SpecIngress,
    NetworkPolicyV1SpecIngressFrom,
    NetworkPolicyV1SpecIngressFromNamespaceSelector,
    NetworkPolicyV1SpecIngressFromPodSelector,
    NetworkPolicyV1SpecIngressPorts,
    NetworkPolicyV1SpecPodSelector,
)
from cdktf_cdktf_provider_kubernetes.pod_disruption_budget_v1 import (
    PodDisruptionBudgetV1,
    PodDisruptionBudgetV1Metadata,
    PodDisruptionBudgetV1Spec,
    PodDisruptionBudgetV1SpecSelector,
)
from constructs import Construct

from .manifests.network_policy import HeadNetworkPolicyProps, head_network_policy
from .manifests.ray_cluster import RayClusterProps, head_disruption_budget, ray_cluster


class RayClusterManifest(Construct):
    manifest: Manifest
    object: dict

    def __init__(self, scope: Construct, id: str, props: RayClusterProps,
                 depends_on: Sequence[ITerraformDependable] = ()) -> None:
        super().__init__(scope, id)
        self.object = ray_cluster(props)
        # Worker replicas belong to the Ray autoscaler, and the plan stays empty while it scales: the manifest
        # has no `replicas`, and on update the provider (v3.2.1 manifest/provider/plan.go) plans every field
        # absent from the manifest at its refreshed live value. computed_fields cannot help: it only applies to
        # fields the manifest sets. force_conflicts stays: workerGroupSpecs is an atomic list (the CRD declares
        # no list-type), so after the autoscaler's first patch it owns the whole list, and any later change of a
        # worker group (image, maxReplicas) would otherwise fail with a field-manager conflict. Forcing sends the
        # list with the refreshed replicas; only a scale step between refresh and apply can be undone, and the
        # autoscaler redoes it on its next pass.
        self.manifest = Manifest(self, id, manifest=self.object,
                                 field_manager=ManifestFieldManager(name="terraform", force_conflicts=True),
                                 wait=ManifestWait(fields={"status.state": "ready"}),
                                 timeouts=ManifestTimeouts(create="20m", update="20m", delete="10m"),
                                 depends_on=list(depends_on) or None)


def _peer(peer: dict) -> NetworkPolicyV1SpecIngressFrom:
    unknown = set(peer) - {"podSelector", "namespaceSelector"}
    assert not unknown, f"peer fields not translated: {unknown}"
    pod, ns = peer.get("podSelector"), peer.get("namespaceSelector")
    return NetworkPolicyV1SpecIngressFrom(
        pod_selector=NetworkPolicyV1SpecIngressFromPodSelector(match_labels=pod["matchLabels"]) if pod else None,
        namespace_selector=(NetworkPolicyV1SpecIngressFromNamespaceSelector(match_labels=ns["matchLabels"])
                            if ns else None))


class RayHeadNetworkPolicy(Construct):
    """``kubernetes_network_policy_v1.ray_head``: ``ray_manifests.head_network_policy`` (validated there as the
    API object) in the provider's typed form, which needs no API access at plan time. The VPC CNI enforces it
    (the vpc-cni add-on's enableNetworkPolicy, infra stack)."""

    policy: NetworkPolicyV1
    object: dict

    def __init__(self, scope: Construct, id: str, props: HeadNetworkPolicyProps) -> None:
        super().__init__(scope, id)
        self.object = head_network_policy(props)
        meta, spec = self.object["metadata"], self.object["spec"]
        self.policy = NetworkPolicyV1(
            self, id, metadata=NetworkPolicyV1Metadata(name=meta["name"], namespace=meta["namespace"]),
            spec=NetworkPolicyV1Spec(
                pod_selector=NetworkPolicyV1SpecPodSelector(match_labels=spec["podSelector"]["matchLabels"]),
                policy_types=spec["policyTypes"],
                ingress=[NetworkPolicyV1SpecIngress(
                    from_=[_peer(p) for p in rule["from"]] if "from" in rule else None,
                    ports=[NetworkPolicyV1SpecIngressPorts(port=str(p["port"]), protocol=p["protocol"])
                           for p in rule["ports"]] if "ports" in rule else None,
                ) for rule in spec["ingress"]]))


class RayHeadDisruptionBudget(Construct):
    """``kubernetes_pod_disruption_budget_v1.ray_head``: ``manifests.ray_cluster.head_disruption_budget`` (validated
    there as the API object) in the provider's typed form, which needs no API access at plan time."""

    budget: PodDisruptionBudgetV1
    object: dict

    def __init__(self, scope: Construct, id: str, props: RayClusterProps) -> None:
        super().__init__(scope, id)
        self.object = head_disruption_budget(props)
        meta, spec = self.object["metadata"], self.object["spec"]
        self.budget = PodDisruptionBudgetV1(
            self, "ray_head", metadata=PodDisruptionBudgetV1Metadata(name=meta["name"], namespace=meta["namespace"],
                                                             labels=meta["labels"]),
            spec=PodDisruptionBudgetV1Spec(
                min_available=str(spec["minAvailable"]),
                selector=PodDisruptionBudgetV1SpecSelector(match_labels=spec["selector"]["matchLabels"])))
