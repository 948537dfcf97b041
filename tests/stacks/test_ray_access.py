"""Who may use the Ray job API (dashboard 8265): a token on the RayCluster, every in-cluster submitter carrying it,
and a NetworkPolicy on the head that admits only the Ray pods, the KubeRay operator, the submitters and
Prometheus — checked on the synthesized stacks, the rendered jobs and the KubeRay v1.7.0 behaviour they rely on."""

from __future__ import annotations

import json

import pytest

from config import AppConfig, parse_config
from constructs_lib.manifests.network_policy import HeadNetworkPolicyProps, head_network_policy
from scripts.render_jobs import documents, job_props
from stacks.contract import KUBERAY_OPERATOR_POD_LABELS
from stacks.ray_cluster import head_network_policy_props
from tests.helpers import REFERENCE, admits, network_policy_object, one
from tests.k8s_schemas import validate_core_object, validate_crd_object

DASHBOARD, GCS, METRICS = 8265, 6379, 8080
HEAD = {"ray.io/cluster": "kuberay", "ray.io/node-type": "head"}
WORKER = {"ray.io/cluster": "kuberay", "ray.io/node-type": "worker", "ray.io/group": "gpu-group"}
STRANGER = {"app": "something-else"}


@pytest.fixture(scope="module")
def policy(default_synth) -> dict:
    return network_policy_object(default_synth["ray-cluster"])


@pytest.fixture(scope="module")
def jobs() -> dict[str, list[dict]]:
    return documents(job_props(AppConfig(), image="registry.example/ray:test",
                               files={"pytorch_training_e2e.py": "print(1)\n"}))


def _rc(stacks) -> dict:
    return one(stacks["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]


# ----------------------------------------------------------------------------------------- token
def test_ray_cluster_requires_a_token(default_synth, prod_synth):
    for stacks in (default_synth, prod_synth):
        rc = _rc(stacks)
        validate_crd_object(rc)
        # mode must be explicit: KubeRay enables auth only for mode == token (an empty authOptions creates the
        # Secret but injects nothing).
        assert rc["spec"]["authOptions"] == {"mode": "token"}
        assert tuple(map(int, rc["spec"]["rayVersion"].split("."))) >= (2, 52, 0)


def test_rendered_submit_job_reads_the_token_kuberay_creates(jobs):
    _, _, job = jobs["submit-job.yaml"]
    validate_core_object(job)
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    # KubeRay v1.7.0 names the Secret after the cluster (utils.CheckName) with the key auth_token.
    assert env["RAY_AUTH_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "kuberay", "key": "auth_token"}}


def test_rayjob_leaves_the_token_to_kuberay(jobs):
    """KubeRay injects RAY_AUTH_MODE/RAY_AUTH_TOKEN into the first container of a clusterSelector RayJob's
    submitter when the selected cluster has authOptions mode token: the RayJob must select that cluster, and its
    submitter must be the first container (utils.RayContainerIndex)."""
    _, rj = jobs["rayjob.yaml"]
    validate_crd_object(rj)
    assert rj["spec"]["clusterSelector"] == {"ray.io/cluster": AppConfig().ray.cluster_name}
    first = rj["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    assert first["name"] == "ray-job-submitter" and "env" not in first


def test_kuberay_facts_the_token_design_relies_on():
    """From the KubeRay v1.7.0 CRD we validate against: authOptions.mode is token|disabled with no default."""
    schema = json.loads((REFERENCE / "raycluster.schema.json").read_text())
    auth = schema["properties"]["spec"]["properties"]["authOptions"]["properties"]
    assert auth["mode"] == {"enum": ["disabled", "token"], "type": "string"}


# ----------------------------------------------------------------------------------------- network policy
def test_head_network_policy_is_a_valid_object_and_what_the_stack_applies(default_synth, prod_synth, policy):
    validate_core_object(policy)
    assert policy == head_network_policy(head_network_policy_props(AppConfig()))
    assert policy["metadata"] == {"name": "kuberay-head-ingress", "namespace": "ray"}
    assert policy["spec"]["podSelector"]["matchLabels"] == HEAD and policy["spec"]["policyTypes"] == ["Ingress"]
    prod_policy = network_policy_object(prod_synth["ray-cluster"])
    validate_core_object(prod_policy)
    assert prod_policy == head_network_policy(head_network_policy_props(prod_synth["_cfg"]))


def test_ray_pods_reach_every_head_port_and_strangers_none(policy):
    for port in (GCS, DASHBOARD, 10001, 8000, 52365):
        assert admits(policy, WORKER, port) and admits(policy, HEAD, port)
        assert not admits(policy, {"ray.io/cluster": "another-cluster"}, port)
    for port in (GCS, DASHBOARD, 10001):
        assert not admits(policy, STRANGER, port)
        assert not admits(policy, WORKER, port, namespace="default"), "a same-named cluster elsewhere"


def test_operator_and_submitters_reach_the_dashboard_only(policy, jobs, default_synth):
    # The operator's pod labels, as its chart renders them: name from nameOverride, instance = our release name.
    values = json.loads((REFERENCE / "kuberay-operator.values.json").read_text())
    release = one(default_synth["ray"], "helm_release", "kuberay_operator")["name"]
    operator = {"app.kubernetes.io/name": values["nameOverride"], "app.kubernetes.io/instance": release,
                "app.kubernetes.io/component": values["componentOverride"]}
    assert KUBERAY_OPERATOR_POD_LABELS.items() <= operator.items()
    _, _, job = jobs["submit-job.yaml"]
    _, rj = jobs["rayjob.yaml"]
    # KubeRay adds its own labels to the RayJob's submitter pods and keeps the template's.
    rayjob_pod = {**rj["spec"]["submitterPodTemplate"]["metadata"]["labels"],
                  "ray.io/originated-from-crd": "RayJob", "ray.io/originated-from-cr-name": rj["metadata"]["name"]}
    operator_ns = default_synth["_cfg"].ray.operator_namespace
    assert admits(policy, operator, DASHBOARD, namespace=operator_ns)
    assert not admits(policy, operator, GCS, namespace=operator_ns)
    assert not admits(policy, operator, DASHBOARD), "the operator's labels on a pod in the Ray namespace"
    for labels in (job["spec"]["template"]["metadata"]["labels"], rayjob_pod):
        assert admits(policy, labels, DASHBOARD), labels
        assert not admits(policy, labels, GCS) and not admits(policy, labels, 10001), labels


def test_metrics_port_follows_the_scrape_mode(policy, prod_synth):
    # annotations (default): scraped by a Prometheus we do not know, so the metrics port (only) is open.
    assert admits(policy, STRANGER, METRICS, namespace="anywhere")
    # prod: monitors + kube-prometheus-stack: only its Prometheus pods.
    prod_policy = network_policy_object(prod_synth["ray-cluster"])
    prometheus = {"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack-prometheus"}
    assert admits(prod_policy, prometheus, METRICS, namespace="monitoring")
    assert not admits(prod_policy, prometheus, DASHBOARD, namespace="monitoring")
    assert not admits(prod_policy, STRANGER, METRICS, namespace="monitoring")
    # none: no rule for it at all.
    off = head_network_policy(HeadNetworkPolicyProps("kuberay", "ray", dict(KUBERAY_OPERATOR_POD_LABELS), None))
    assert not admits(off, STRANGER, METRICS)
    assert head_network_policy_props(parse_config({"observability": {"metrics_scrape": "none"}})).metrics_from is None


def test_vpc_cni_enforces_network_policies(default_synth):
    addon = one(default_synth["infra"], "aws_eks_addon", "vpc_cni")
    assert json.loads(addon["configuration_values"]) == {"enableNetworkPolicy": "true"}


# ----------------------------------------------------------------------------------------- users' commands
def test_outputs_export_the_token_before_submitting(default_synth):
    out = default_synth["ray-cluster"]["output"]
    token = "kubectl get secret -n ray kuberay -o 'go-template={{.data.auth_token | base64decode}}'"
    assert out["ray_auth_token_command"]["value"] == token
    assert out["ray_auth_export_command"]["value"] == f'export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$({token})"'
    assert out["ray_job_submit_command"]["value"].startswith("ray job submit --address http://localhost:8265 ")
