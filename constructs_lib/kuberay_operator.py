"""The KubeRay operator, from its official Helm chart (CRDs included), in a namespace of its own.

Single-namespace mode (kuberay-operator chart v1.7.0 values ``singleNamespaceInstall``, ``watchNamespace``): the
operator watches only the Ray namespace (``--watch-namespace``), and its rights there are a Role in that
namespace (templates/multiple_namespaces_role.yaml) bound to its ServiceAccount in its own namespace -- no
ClusterRole, no ClusterRoleBinding (templates/role.yaml, rolebinding.yaml render only without that mode). Its own
namespace holds only the operator (and its leader-election Role): no Ray code can run as its ServiceAccount, and
Pod Security ``restricted`` holds there (the chart's default container securityContext satisfies it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_helm.release import Release
from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1, NamespaceV1Metadata
from constructs import Construct

from conventions.kubernetes import CORE_ROLE, node_selector, pod_security_labels

KUBERAY_REPO = "https://ray-project.github.io/kuberay-helm/"
# The operator's pod meets the restricted level (values.yaml securityContext: no privilege escalation, all
# capabilities dropped, non-root, RuntimeDefault seccomp; no host namespaces or volumes in deployment.yaml).
OPERATOR_POD_SECURITY = "restricted"


@dataclass(frozen=True)
class KubeRayOperatorProps:
    namespace: str  # the operator's own
    watch_namespace: str  # the Ray namespace: the only one it reconciles and has rights in
    release_name: str  # also the operator pod's app.kubernetes.io/instance label
    chart_version: str


def operator_values(watch_namespace: str) -> dict:
    """Values for the kuberay-operator chart (keys checked against the chart's values.yaml in tests)."""
    return {
        # On core nodes, never on GPU nodes (no tolerations); no affinity. No priority class: like any workload,
        # it is rescheduled if evicted, and it has nothing to preempt for.
        "nodeSelector": node_selector(CORE_ROLE),
        "tolerations": [],
        "affinity": {},
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "metrics": {"enabled": True},
        # A Role per watched namespace instead of the ClusterRole (secrets, pods, roles... in every namespace).
        "singleNamespaceInstall": True,
        "watchNamespace": [watch_namespace],
    }


class KubeRayOperator(Construct):
    """Addresses: ``kubernetes_namespace_v1.kuberay_operator``, ``helm_release.kuberay_operator``."""

    release: Release
    namespace: NamespaceV1

    def __init__(self, scope: Construct, id: str, props: KubeRayOperatorProps) -> None:
        super().__init__(scope, id)
        self.namespace = NamespaceV1(Construct(self, "ns"), "kuberay_operator", metadata=NamespaceV1Metadata(
            name=props.namespace, labels=pod_security_labels(OPERATOR_POD_SECURITY)))
        self.release = Release(
            self, "kuberay_operator", name=props.release_name, namespace=self.namespace.metadata.name,
            repository=KUBERAY_REPO, chart="kuberay-operator", version=props.chart_version,
            values=[json.dumps(operator_values(props.watch_namespace))],
            # The RayCluster stack plans against the CRDs: they must be served when this apply ends.
            wait=True, atomic=True, timeout=600,
        )
