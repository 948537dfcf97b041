"""The RayCluster manifest and the head's NetworkPolicy, alone from their props (``construct_synth``): the API
object applied as is (no worker replicas for Terraform to fight the autoscaler over, token auth), and the policy in
the provider's typed form admitting exactly the props' peers."""

from __future__ import annotations

import pytest
from cdktf_cdktf_provider_kubernetes.manifest import Manifest
from cdktf_cdktf_provider_kubernetes.network_policy_v1 import NetworkPolicyV1

from constructs_lib.manifests.network_policy import HeadNetworkPolicyProps
from constructs_lib.manifests.ray_cluster import RayClusterProps, WorkerGroupProps
from constructs_lib.ray_cluster import RayClusterManifest, RayHeadDisruptionBudget, RayHeadNetworkPolicy
from tests.helpers import admits, network_policy_object

CLUSTER = RayClusterProps(name="unit", namespace="ray-unit", ray_version="2.58.0", image="registry.example/ray:1",
                          head_service_account="head-sa", worker_service_account="worker-sa", pvc_name="fsx-unit",
                          head_cpu="2", head_memory="8Gi",
                          idle_timeout_seconds=90, worker_drain_seconds=45, upgrade_strategy="Recreate",
                          worker_groups=[WorkerGroupProps("gpu-group", "gpu-a10g", 1, 4, "7", "28Gi", 1),
                                         WorkerGroupProps("cpu-group", "cpu-spot", 0, 2, "3", "12Gi", 0)])
OPERATOR = {"app.kubernetes.io/name": "kuberay-operator"}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


@pytest.fixture(scope="module")
def cluster(construct_synth):
    return construct_synth(lambda stack: RayClusterManifest(stack, "ray_cluster", CLUSTER), providers=("kubernetes",))


def _policy(construct_synth, metrics_from):
    return construct_synth(lambda stack: RayHeadNetworkPolicy(stack, "ray_head", HeadNetworkPolicyProps(
        cluster_name="unit", namespace="ray-unit", operator_pod_labels=OPERATOR, metrics_from=metrics_from,
        operator_namespace="operator-unit")),
        providers=("kubernetes",))


def test_the_manifest_waits_for_ready_and_forces_the_worker_list(cluster):
    assert cluster.has_resource(Manifest, {
        "field_manager": {"name": "terraform", "force_conflicts": True},
        "wait": {"fields": {"status.state": "ready"}},
        "timeouts": {"create": "20m", "update": "20m", "delete": "10m"}})


def test_the_manifest_is_the_props_raycluster_with_token_auth(cluster):
    manifest = cluster.one("kubernetes_manifest", "ray_cluster")["manifest"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    assert manifest["metadata"]["name"] == "unit" and manifest["metadata"]["namespace"] == "ray-unit"
    spec = manifest["spec"]
    assert spec["rayVersion"] == "2.58.0" and spec["authOptions"] == {"mode": "token"}
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 90 and spec["enableInTreeAutoscaling"] is True
    assert manifest == cluster.construct.object  # the construct's attribute is what Terraform applies


def test_only_the_autoscaler_container_holds_the_heads_api_token(cluster):
    """KubeRay binds the autoscaler's Role to the head template's ServiceAccount; the token reaches the autoscaler
    container alone (KubeRay appends autoscalerOptions.volumeMounts to it), never the Ray containers."""
    spec = cluster.one("kubernetes_manifest", "ray_cluster")["manifest"]["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]
    assert head["serviceAccountName"] == "head-sa" and head["automountServiceAccountToken"] is False
    (volume,) = [v for v in head["volumes"] if "projected" in v]
    assert [s.get("serviceAccountToken") for s in volume["projected"]["sources"]][0] == {
        "path": "token", "expirationSeconds": 3607}
    mounts = [m for c in head["containers"] + head["initContainers"] for m in c["volumeMounts"]]
    assert volume["name"] not in {m["name"] for m in mounts}
    assert spec["autoscalerOptions"]["volumeMounts"] == [{
        "name": volume["name"], "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}]
    for group in spec["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        assert pod["serviceAccountName"] == "worker-sa" and pod["automountServiceAccountToken"] is False
        assert not [v for v in pod["volumes"] if "projected" in v]


def test_no_worker_replicas_the_autoscaler_owns_them(cluster):
    groups = cluster.one("kubernetes_manifest", "ray_cluster")["manifest"]["spec"]["workerGroupSpecs"]
    assert [(g["groupName"], g["minReplicas"], g["maxReplicas"]) for g in groups] == [
        ("gpu-group", 1, 4), ("cpu-group", 0, 2)]
    assert not [g["groupName"] for g in groups if "replicas" in g]


def test_policy_admits_own_pods_operator_submitters_and_the_props_scraper(construct_synth):
    scraped = _policy(construct_synth, [PROMETHEUS])
    assert scraped.has_resource(NetworkPolicyV1, {
        "metadata": {"name": "unit-head-ingress", "namespace": "ray-unit"},
        "spec": {"policy_types": ["Ingress"],
                 "pod_selector": {"match_labels": {"ray.io/cluster": "unit", "ray.io/node-type": "head"}}}})
    policy = network_policy_object(scraped.doc)
    assert policy == scraped.construct.object  # the typed form says what the API object says
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    assert admits(policy, {"ray.io/cluster": "unit", "ray.io/node-type": "worker"}, 6379)
    # The operator, in its own namespace: from there, and only from there.
    assert admits(policy, OPERATOR, 8265, namespace="operator-unit") and not admits(policy, OPERATOR, 8265)
    assert not admits(policy, OPERATOR, 6379, namespace="operator-unit")
    assert admits(policy, {"ray-eks/submits-to": "unit"}, 8265)
    assert admits(policy, prometheus, 8080, namespace="monitoring") and not admits(policy, prometheus, 8080)
    assert not admits(policy, {"app": "stranger"}, 8265)


@pytest.mark.parametrize("metrics_from, rules", [(None, 2), ([], 3)])
def test_metrics_port_closed_or_open_to_any_pod_as_the_props_say(construct_synth, metrics_from, rules):
    policy = network_policy_object(_policy(construct_synth, metrics_from).doc)
    assert len(policy["spec"]["ingress"]) == rules
    assert admits(policy, {"app": "any-prometheus"}, 8080) is (metrics_from is not None)


def _pods(cluster) -> dict[str, dict]:
    spec = cluster.one("kubernetes_manifest", "ray_cluster")["manifest"]["spec"]
    return {"head": spec["headGroupSpec"]["template"],
            **{g["groupName"]: g["template"] for g in spec["workerGroupSpecs"]}}


def test_each_worker_group_selects_its_own_node_group_not_the_role(cluster):
    """Two groups of one role must not take each other's workers: the selector names the node group."""
    pods = _pods(cluster)
    assert pods["gpu-group"]["spec"]["nodeSelector"] == {"ray-eks/node-group": "gpu-a10g"}
    assert pods["cpu-group"]["spec"]["nodeSelector"] == {"ray-eks/node-group": "cpu-spot"}
    assert pods["head"]["spec"]["nodeSelector"] == {"usage": "core"}  # shared by role: the core group


def test_every_ray_pod_keeps_the_node_autoscalers_off_its_node(cluster):
    for name, pod in _pods(cluster).items():
        annotations = pod["metadata"]["annotations"]
        assert annotations["karpenter.sh/do-not-disrupt"] == "true", name
        assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false", name


def test_workers_drain_before_they_are_killed(cluster):
    """SIGTERM makes Ray 2.58 drain for RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S, then shut down: the grace period
    covers both, so SIGKILL never lands mid-drain."""
    for name in ("gpu-group", "cpu-group"):
        spec = _pods(cluster)[name]["spec"]
        (ray,) = spec["containers"]
        assert {"name": "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "value": "45"} in ray["env"]
        assert spec["terminationGracePeriodSeconds"] == 45 + 30


def test_a_changed_spec_recreates_the_pods(cluster):
    spec = cluster.one("kubernetes_manifest", "ray_cluster")["manifest"]["spec"]
    assert spec["upgradeStrategy"] == {"type": "Recreate"}


def test_the_head_has_a_disruption_budget_for_its_one_pod(construct_synth):
    """minAvailable 1 over the head's labels (KubeRay's ray.io/cluster and ray.io/node-type): no eviction."""
    synth = construct_synth(lambda stack: RayHeadDisruptionBudget(stack, "budget", CLUSTER), providers=("kubernetes",))
    body = synth.one("kubernetes_pod_disruption_budget_v1", "ray_head")
    assert body["metadata"]["name"] == "unit-head" and body["metadata"]["namespace"] == "ray-unit"
    assert body["spec"] == {"min_available": "1", "selector": {"match_labels": {
        "ray.io/cluster": "unit", "ray.io/node-type": "head"}}}
    assert synth.construct.object["spec"]["selector"]["matchLabels"] == {"ray.io/cluster": "unit",
                                                                          "ray.io/node-type": "head"}
