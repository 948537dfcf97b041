"""Who may reach the Ray head: a NetworkPolicy on the head pod."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from conventions.kubernetes import submitter_labels
from conventions.ray import HEAD_NODE_TYPE, HEAD_PORTS, RAY_CLUSTER_LABEL, RAY_NODE_TYPE_LABEL


@dataclass(frozen=True)
class HeadNetworkPolicyProps:
    cluster_name: str
    namespace: str
    operator_pod_labels: dict[str, str]  # the KubeRay operator's pods
    # Who scrapes the metrics port: None, nobody (no rule); [] any pod (a Prometheus we do not know);
    # else these NetworkPolicy peers (kube-prometheus-stack's Prometheus).
    metrics_from: list[dict] | None
    operator_namespace: str | None = None  # where the operator's pods run (None: the Ray namespace)
    # The head's metrics ports: Ray's (HEAD_PORTS metrics) and, scraped by PodMonitor, the autoscaler's and the
    # dashboard's.
    metrics_ports: tuple[int, ...] = (HEAD_PORTS["metrics"],)


def head_network_policy(props: HeadNetworkPolicyProps) -> dict:
    """Ingress to the Ray head: the cluster's own Ray pods on every port (GCS, raylet, object manager, client);
    the dashboard/Jobs API (8265) only from the KubeRay operator's pods in their namespace (it calls it for RayJobs)
    and the in-cluster submitter pods (label ``SUBMITTER_LABEL``); the metrics port from Prometheus when metrics
    are scraped.

    Not subject to it: ``kubectl port-forward`` (the kubelet connects inside the pod's network namespace, never
    through the host veth where the VPC CNI's eBPF policy runs) and kubelet probes (traffic from the node is always
    allowed). Egress is left open (Ray pods pull data, the head queries Prometheus/Grafana).
    """
    own = {RAY_CLUSTER_LABEL: props.cluster_name}
    operator: dict = {"podSelector": {"matchLabels": dict(props.operator_pod_labels)}}
    if props.operator_namespace and props.operator_namespace != props.namespace:
        # The API server labels every namespace with its name (kubernetes.io/metadata.name).
        operator["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": props.operator_namespace}}
    ingress: list[dict] = [
        {"from": [{"podSelector": {"matchLabels": dict(own)}}]},
        {"from": [operator,
                  {"podSelector": {"matchLabels": submitter_labels(props.cluster_name)}}],
         "ports": [{"protocol": "TCP", "port": HEAD_PORTS["dashboard"]}]},
    ]
    if props.metrics_from is not None:
        rule: dict = {"ports": [{"protocol": "TCP", "port": port} for port in props.metrics_ports]}
        if props.metrics_from:
            rule["from"] = [copy.deepcopy(p) for p in props.metrics_from]
        ingress.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": f"{props.cluster_name}-head-ingress", "namespace": props.namespace},
        "spec": {
            "podSelector": {"matchLabels": {**own, RAY_NODE_TYPE_LABEL: HEAD_NODE_TYPE}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
