"""Who gets into Grafana: no anonymous viewers (issue 21), a login the chart generates (read by `make grafana`),
embedding for the Ray dashboard's iframes with the cookie they need, a Role instead of a cluster-wide ClusterRole,
and a NetworkPolicy that admits only the Ray head and Prometheus."""

from __future__ import annotations

import json

from constructs_lib.observability import kube_prometheus_stack_values
from tests.cluster_model import helm
from tests.cluster_model.facts import chart_facts
from tests.helpers import admits, network_policy_object, one

HEAD = {"ray.io/cluster": "kuberay", "ray.io/node-type": "head"}
WORKER = {"ray.io/cluster": "kuberay", "ray.io/node-type": "worker"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}


def grafana_values(prod_synth) -> dict:
    release = one(prod_synth["ray"], "helm_release", "kube_prometheus_stack")
    facts = chart_facts("kube-prometheus-stack", release["version"])
    return helm.coalesce(facts.chart, json.loads(release["values"][0]))["grafana"]


def test_no_anonymous_viewers_and_a_generated_password(prod_synth):
    g = grafana_values(prod_synth)
    assert g["grafana.ini"]["auth.anonymous"] == {"enabled": False}
    assert g["grafana.ini"]["security"]["allow_embedding"] is True
    # No adminPassword and no existing Secret: the chart generates 40 random characters into its Secret.
    assert "adminPassword" not in g and not g.get("admin", {}).get("existingSecret")
    assert g["rbac"]["namespaced"] is True


def test_the_session_cookie_follows_the_iframe_host():
    lax = kube_prometheus_stack_values("http://localhost:3000")["grafana"]["grafana.ini"]["security"]
    assert lax == {"allow_embedding": True}  # one site through the port-forwards: Grafana's SameSite=Lax works
    other_site = kube_prometheus_stack_values("https://grafana.example.com")["grafana"]["grafana.ini"]["security"]
    assert other_site == {"allow_embedding": True, "cookie_samesite": "none", "cookie_secure": True}


def test_only_the_ray_head_and_prometheus_reach_grafana(prod_synth):
    policy = network_policy_object(prod_synth["ray"], "grafana")
    assert policy["metadata"]["namespace"] == "${kubernetes_namespace_v1.monitoring.metadata[0].name}"
    policy["metadata"]["namespace"] = "monitoring"
    # The grafana chart 10.2.0's selector labels, with kube-prometheus-stack's release name.
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "grafana",
                                                            "app.kubernetes.io/instance": "kube-prometheus-stack"}
    assert admits(policy, HEAD, 3000, namespace="ray")
    assert admits(policy, PROMETHEUS, 3000, namespace="monitoring")
    assert not admits(policy, WORKER, 3000, namespace="ray")
    assert not admits(policy, HEAD, 3000, namespace="default")
    assert not admits(policy, {"app": "anything"}, 3000, namespace="monitoring")
    assert not admits(policy, HEAD, 22, namespace="ray")


def test_the_ray_head_names_grafanas_datasource_and_reaches_it(prod_synth):
    """The Ray dashboard's panels ask for var-datasource=<RAY_PROMETHEUS_NAME>: it must be the datasource
    kube-prometheus-stack provisions (recorded chart values); the head's health check goes to Grafana's Service."""
    g = grafana_values(prod_synth)
    rc = one(prod_synth["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]
    env = {e["name"]: e["value"] for e in rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RAY_PROMETHEUS_NAME"] == g["sidecar"]["datasources"]["name"]
    assert env["RAY_GRAFANA_HOST"] == "http://kube-prometheus-stack-grafana.monitoring.svc:80"
    assert env["RAY_GRAFANA_IFRAME_HOST"] == "http://localhost:3000"  # where `make grafana` forwards
