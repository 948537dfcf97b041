"""The KubeRay operator, from its official Helm chart (CRDs included)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_helm.release import Release
from constructs import Construct

from conventions.kubernetes import CORE_ROLE, node_selector

KUBERAY_REPO = "https://ray-project.github.io/kuberay-helm/"


@dataclass(frozen=True)
class KubeRayOperatorProps:
    namespace: str
    release_name: str  # also the operator pod's app.kubernetes.io/instance label
    chart_version: str


def operator_values() -> dict:
    """Values for the kuberay-operator chart (keys checked against the chart's values.yaml in tests)."""
    return {
        # On core nodes, never on GPU nodes (no tolerations); no affinity. No priority class: like any workload,
        # it is rescheduled if evicted, and it has nothing to preempt for.
        "nodeSelector": node_selector(CORE_ROLE),
        "tolerations": [],
        "affinity": {},
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "metrics": {"enabled": True},
    }


class KubeRayOperator(Construct):
    release: Release

    def __init__(self, scope: Construct, id: str, props: KubeRayOperatorProps) -> None:
        super().__init__(scope, id)
        self.release = Release(
            self, "kuberay_operator", name=props.release_name, namespace=props.namespace,
            repository=KUBERAY_REPO, chart="kuberay-operator", version=props.chart_version,
            values=[json.dumps(operator_values())],
            # The RayCluster stack plans against the CRDs: they must be served when this apply ends.
            wait=True, atomic=True, timeout=600,
        )
