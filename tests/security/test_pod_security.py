"""Pod Security: every namespace the deployment creates carries Pod Security labels, and every pod we put in one of
them passes the level it enforces (tests/security/pod_security.py, the Pod Security Standards' checks). The Ray
namespace enforces baseline: the one pod part that restricted refuses is the FSx permission init container (root,
CHOWN/FOWNER: Lustre ignores fsGroup); everything else there meets restricted, which the namespace warns about."""

from __future__ import annotations

import pytest

from conventions.kubernetes import POD_SECURITY_LABEL
from scripts.render_jobs import documents, job_props
from tests.helpers import resources, stack_items

from . import escalation as esc
from .pod_security import baseline, restricted, violations

# What restricted refuses in the Ray namespace, and only there: the FSx init container (constructs_lib/manifests/
# ray_cluster.py _fsx_permissions_init). Anything else failing restricted is a regression.
FSX_INIT_RESTRICTED = {"container fsx-permissions: runAsNonRoot != true", "container fsx-permissions: runAsUser=0",
                       "container fsx-permissions: adds capabilities ['CHOWN', 'FOWNER']"}


@pytest.fixture(scope="module", params=["default", "prod", "dev"])
def synth(request, app_synth):
    return app_synth(request.param)


@pytest.fixture(scope="module")
def dep(synth):
    return esc.deployment(synth, documents(job_props(synth["_cfg"], image="registry.example/ray:render")))


def test_every_namespace_we_create_carries_pod_security_labels(synth):
    created = {}
    for _, stack in stack_items(synth):
        for ns in resources(stack, "kubernetes_namespace_v1").values():
            created[ns["metadata"]["name"]] = ns["metadata"].get("labels") or {}
        for key, rel in resources(stack, "helm_release").items():
            assert not rel.get("create_namespace"), f"helm_release.{key} would create a namespace without labels"
    cfg = synth["_cfg"]
    assert {cfg.ray.namespace, cfg.ray.operator_namespace} <= set(created)
    for name, labels in created.items():
        for mode in ("enforce", "audit", "warn"):
            assert f"{POD_SECURITY_LABEL}/{mode}" in labels, (name, mode)
    assert created[cfg.ray.operator_namespace][f"{POD_SECURITY_LABEL}/enforce"] == "restricted"
    assert created[cfg.ray.namespace][f"{POD_SECURITY_LABEL}/enforce"] == "baseline"
    assert created[cfg.ray.namespace][f"{POD_SECURITY_LABEL}/warn"] == "restricted"


def test_every_pod_in_our_namespaces_passes_what_its_namespace_enforces(dep, synth):
    ours = [p for p in dep.pods if p.namespace in dep.ours]
    cfg = synth["_cfg"]
    # Every kind of pod we make is here: operator, head, each worker group, the rendered Job and RayJob submitter.
    keys = {p.key for p in ours}
    assert "helm/kuberay-operator/kuberay-operator" in keys
    assert {f"RayCluster/{cfg.ray.cluster_name}/worker/{g.name}" for g in cfg.ray.worker_groups} <= keys
    assert any(k.startswith("render_jobs/rayjob.yaml/") for k in keys)
    assert any(k.startswith("lambda/") for k in keys) == cfg.orchestrator_enabled
    for pod in ours:
        level = dep.namespaces[pod.namespace]
        assert violations(pod.spec, level) == [], (pod.key, level)


def test_only_the_fsx_init_container_keeps_the_ray_namespace_from_restricted(dep, synth):
    ray = synth["_cfg"].ray.namespace
    for pod in (p for p in dep.pods if p.namespace == ray):
        found = set(restricted(pod.spec))
        expected = FSX_INIT_RESTRICTED if pod.key.startswith("RayCluster/") else set()
        assert found == expected, pod.key


def test_the_operator_meets_restricted(dep, synth):
    (operator,) = [p for p in dep.pods if p.key == "helm/kuberay-operator/kuberay-operator"]
    assert operator.namespace == synth["_cfg"].ray.operator_namespace
    assert operator.spec["containers"][0]["securityContext"]["runAsNonRoot"] is True
    assert restricted(operator.spec) == []


# ------------------------------------------------------------------------------------------ the checks themselves
RESTRICTED_OK = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                                  "capabilities": {"drop": ["ALL"]}}}],
                 "volumes": [{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x"}}]}


@pytest.mark.parametrize("change, level", [
    ({"hostNetwork": True}, "baseline"),
    ({"hostPID": True}, "baseline"),
    ({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "baseline"),
    ({"containers": [{"name": "c", "securityContext": {"privileged": True}}]}, "baseline"),
    ({"containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}, "baseline"),
    ({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}, "baseline"),
    ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}, "baseline"),
    ({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}, "baseline"),
    ({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}, "restricted"),  # runAsNonRoot missing
    ({"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}, "restricted"),
    ({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": False,
                                                       "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}]},
     "restricted"),
    ({"containers": [{"name": "c", "securityContext": {"capabilities": {"drop": ["ALL"]}}}]}, "restricted"),
])
def test_each_check_refuses_what_the_standard_refuses(change, level):
    spec = {**RESTRICTED_OK, **change}
    assert restricted(spec), change
    assert bool(baseline(spec)) == (level == "baseline"), change


def test_a_restricted_pod_passes_every_level():
    assert violations(RESTRICTED_OK, "restricted") == violations(RESTRICTED_OK, "baseline") == []
    assert violations({"hostNetwork": True, "containers": [{"name": "c"}]}, "privileged") == []
