"""No foothold reaches more than its job: the escalation search (tests/security/escalation.py) over the default,
prod, dev and Karpenter deployments finds no path from code in a Ray job (head or worker), any container of a pod in
the Ray namespace, a pod of any spec there, or a principal that may invoke the orchestrator's function, to Secrets
outside what it needs, pods in other namespaces, a node, another IAM role or cluster admin.

Mutation tests put back what the deployment was before issue 21 -- the KubeRay operator in the Ray namespace with
its ClusterRole and one ServiceAccount ``ray`` (token mounted) for head and workers; an orchestrator function that
creates the Job its event carries -- and the search finds the two paths of the issue again.

The identities the other parts of the platform add are in the model too, each with what it can do and a mutation
that shows the model sees it: the API tunnel instance (Session Manager: its own role and the API's network, no
credentials), Karpenter's controller (IRSA; launches instances as the node role), the DCGM exporter (root on GPU
nodes by design, no API token) and Grafana (its namespace's Secrets, through its Role).
"""

from __future__ import annotations

import copy
import json

import pytest

from conventions.kubernetes import auth_secret_name
from lambdas import ray_orchestrator as fn
from scripts.render_jobs import documents, job_props
from tests.helpers import one
from tests.k8s_authz import UnclassifiedPermission, capabilities

from . import escalation as esc

RENDER_IMAGE = "registry.example/ray:render"
RAY_ROLE = "aws_iam_role.ray_workload"  # the one IAM role of the Ray pods: the data bucket


def footholds(dep: esc.Deployment, cfg) -> dict[str, tuple[str, esc.Allowed]]:
    """Where an attacker may start, and what each may legitimately reach."""
    ray = cfg.ray.namespace
    ray_pods = esc.Allowed(pods=frozenset({ray}), roles=frozenset({RAY_ROLE}),
                           secrets=frozenset({f"{ray}/{auth_secret_name(cfg.ray.cluster_name)}"}))
    out = {f"code in {c}": (c, ray_pods) for c in esc.ray_containers(dep, ray)}
    out[f"a pod of any spec in namespace {ray}"] = (f"pods:{ray}", ray_pods)
    for function in dep.functions:
        out[f"a principal that may invoke {function}"] = (f"invoke:{function}", esc.Allowed())
    return out


def synth_facts(synth: dict, mutate=None) -> tuple[esc.Deployment, dict]:
    """The facts of a session synth (and of its rendered job objects), after ``mutate`` changed a copy of it."""
    cfg = synth["_cfg"]
    if mutate is not None:
        synth = {**copy.deepcopy({k: v for k, v in synth.items() if not k.startswith("_")}),
                 "_outdir": synth["_outdir"], "_cfg": cfg}
        mutate(synth)
    return esc.deployment(synth, documents(job_props(cfg, image=RENDER_IMAGE))), synth


def found(dep: esc.Deployment, cfg, run=None) -> dict[str, list[list[str]]]:
    g = esc.build_graph(dep, run)
    out = {}
    for name, (start, allowed) in footholds(dep, cfg).items():
        paths = esc.escalations(g, start, allowed)
        if paths:
            out[name] = paths
    return out


def _explain(paths: dict[str, list[list[str]]]) -> str:
    return "\n".join(f"{name}:\n    " + "\n    ".join(" ; ".join(p) for p in ps[:3]) for name, ps in paths.items())


@pytest.fixture(scope="module", params=["default", "prod", "dev", "karpenter"])
def synth(request, app_synth):
    return app_synth(request.param)


# ------------------------------------------------------------------------------------------ the deployments
def test_no_foothold_reaches_more_than_its_job(synth):
    dep, _ = synth_facts(synth)
    cfg = synth["_cfg"]
    holds = footholds(dep, cfg)
    # The search starts where the issue says: the head's and every worker group's Ray code, and the invoker.
    assert any(name.endswith("/head/ray-head") for name in holds)
    for group in cfg.ray.worker_groups:
        assert any(name.endswith(f"/worker/{group.name}/ray-worker") for name in holds), group.name
    assert any("invoke" in name for name in holds) == cfg.orchestrator_enabled
    paths = found(dep, cfg)
    assert not paths, _explain(paths)


def test_ray_code_holds_no_kubernetes_identity_and_only_the_data_bucket_role(default_synth):
    """The head's and workers' Ray containers hold no API token; their one IAM role is the data bucket's."""
    dep, _ = synth_facts(default_synth)
    g = esc.build_graph(dep)
    ray = default_synth["_cfg"].ray.namespace
    for start in esc.ray_containers(dep, ray):
        if not start.endswith(("/ray-head", "/ray-worker")):
            continue
        reached = set(g.reach(start))
        assert not [n for n in reached if n.startswith(("sa:", "pods:", "group:"))], (start, sorted(reached))
        assert {n for n in reached if n.startswith("iam:")} == {f"iam:{RAY_ROLE}"}, start


def test_what_the_heads_serviceaccount_keeps_is_harmless(default_synth):
    """The autoscaler (its container alone holds the head's token) may patch pods and the RayCluster, so it can make
    the operator start pods of any spec in the Ray namespace: every ServiceAccount there has no more than the Ray
    pods' own role, Pod Security there refuses host access, and the operator's ServiceAccount is elsewhere."""
    dep, _ = synth_facts(default_synth)
    g = esc.build_graph(dep)
    autoscaler = next(c for c in esc.ray_containers(dep, "ray") if c.endswith("/head/autoscaler"))
    seen = g.reach(autoscaler)
    assert "sa:ray/ray-head" in seen and "pods:ray" in seen
    assert "sa:kuberay-system/kuberay-operator" not in seen
    assert {n for n in seen if n.startswith("pod-as:")} == {f"pod-as:ray/{sa}" for sa in (
        "default", "ray-head", "ray-worker", "ray-operator-ray-operator")}


# ------------------------------------------------------------------------------------------ today's objects
def operator_beside_the_ray_pods(synth: dict) -> None:
    """Undo the operator's separation: the chart's defaults (ClusterRole, every namespace) in the Ray namespace."""
    rel = synth["ray"]["resource"]["helm_release"]["kuberay_operator"]
    rel["namespace"] = "${kubernetes_namespace_v1.ray.metadata[0].name}"
    values = json.loads(rel["values"][0])
    del values["singleNamespaceInstall"], values["watchNamespace"]
    rel["values"] = [json.dumps(values)]
    del synth["ray"]["resource"]["kubernetes_namespace_v1"]["kuberay_operator"]


def one_ray_serviceaccount_with_its_token(synth: dict) -> None:
    """Undo the ServiceAccount split: head and workers as ``ray``, its token automounted into every container."""
    res = synth["ray"]["resource"]
    head = res["kubernetes_service_account_v1"].pop("ray_head")
    del res["kubernetes_service_account_v1"]["ray_worker"]
    res["kubernetes_service_account_v1"]["ray"] = {
        **head, "metadata": {**head["metadata"], "name": "ray"}, "automount_service_account_token": True}
    rc = one(synth["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]
    pods = [rc["spec"]["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"]
                                                               for g in rc["spec"]["workerGroupSpecs"])]
    for pod in pods:
        pod["serviceAccountName"] = "ray"
        del pod["automountServiceAccountToken"]
        pod["volumes"] = [v for v in pod["volumes"] if "projected" not in v]
    del rc["spec"]["autoscalerOptions"]["volumeMounts"]
    role = res["aws_iam_role"]["ray_workload"]
    subjects = '["system:serviceaccount:ray:ray-head", "system:serviceaccount:ray:ray-worker"]'
    assert subjects in role["assume_role_policy"]
    role["assume_role_policy"] = role["assume_role_policy"].replace(subjects, '"system:serviceaccount:ray:ray"')


def before_issue_21(synth: dict) -> None:
    operator_beside_the_ray_pods(synth)
    one_ray_serviceaccount_with_its_token(synth)


def _via(paths: list[list[str]], node: str) -> bool:
    return any(node in step for path in paths for step in path)


def test_todays_objects_path_1_ray_job_code_to_cluster_admin(default_synth):
    """Before the fix, job code on a worker (or the head) holds the shared token, patches the RayCluster, has the
    operator run a pod as the operator's ServiceAccount, and from its ClusterRole reaches a namespace without Pod
    Security: a node."""
    dep, _ = synth_facts(default_synth, before_issue_21)
    paths = found(dep, default_synth["_cfg"])
    for part in ("/head/ray-head", "/worker/gpu-group/ray-worker"):
        (name,) = [n for n in paths if n.endswith(part)]
        assert _via(paths[name], "sa:ray/kuberay-operator"), paths[name][0]
        assert any(p[-1].endswith("--> node") or p[-1].endswith("--> cluster-admin") for p in paths[name])


def test_operator_beside_the_ray_pods_alone_is_found(default_synth):
    """Undo only the operator's separation: the autoscaler's rights (which the head keeps) lead to the operator's
    ServiceAccount and from there out of the namespace."""
    dep, _ = synth_facts(default_synth, operator_beside_the_ray_pods)
    paths = found(dep, default_synth["_cfg"])
    autoscaler = [n for n in paths if n.endswith("/head/autoscaler")]
    assert autoscaler and _via(paths[autoscaler[0]], "sa:ray/kuberay-operator")
    assert "a pod of any spec in namespace ray" in paths


def old_run(event, pipeline, send, now=None):
    """The function's submit as it was (commit 3afb3c1, lambdas/ray_orchestrator.py run and checked_job): it created
    the Job its event carried after checking its kind, name and namespace."""
    if event.get("action") != "submit":
        return fn.run(event, pipeline, send, now)
    job = event.get("job")
    if not isinstance(job, dict) or job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
        raise fn.KubernetesApiError("submit takes a batch/v1 Job")
    meta = job.get("metadata") or {}
    fn.dns_name(meta.get("name"), "job name")
    if meta.get("namespace", pipeline.namespace) != pipeline.namespace:
        raise fn.KubernetesApiError("namespace")
    created = send(fn.create_job(pipeline.namespace, {**job, "metadata": {**meta, "namespace": pipeline.namespace}}))
    return {"name": created["metadata"]["name"], "uid": created["metadata"]["uid"]}


def test_todays_function_path_2_invoker_creates_any_pod(default_synth):
    """With the function as it was, whoever may invoke it creates a pod of any spec in the Ray namespace: with
    today's objects the operator's ServiceAccount and on to a node; even with the operator apart, the Ray pods' IAM
    role and token Secret, none of which an invoker should have."""
    dep, _ = synth_facts(default_synth, before_issue_21)
    (function,) = dep.functions
    assert esc.function_takes_pod_specs(dep.functions[function][0], old_run)
    paths = found(dep, default_synth["_cfg"], old_run)[f"a principal that may invoke {function}"]
    assert _via(paths, "sa:ray/kuberay-operator")
    fixed, _ = synth_facts(default_synth)
    paths = found(fixed, default_synth["_cfg"], old_run)[f"a principal that may invoke {function}"]
    assert {p[-1].rsplit("--> ", 1)[1] for p in paths} >= {"pods:ray", f"iam:{RAY_ROLE}", "secret:ray/kuberay"}


def test_the_function_as_it_is_takes_no_pod_spec(default_synth):
    dep, _ = synth_facts(default_synth)
    (pipeline, _) = next(iter(dep.functions.values()))
    assert not esc.function_takes_pod_specs(pipeline)


# ------------------------------------------------------------------------------------------ the model itself
def test_the_operator_rbac_follows_the_chart_for_our_values(default_synth):
    """Single-namespace mode: a Role in the Ray namespace and the leader-election Role in its own; the chart's
    defaults: a ClusterRole."""
    dep, _ = synth_facts(default_synth)
    operator = [(ns, len(rules)) for subject, rules, ns in dep.bindings
                if subject == "sa:kuberay-system/kuberay-operator"]
    assert sorted(ns for ns, _ in operator) == ["kuberay-system", "ray"] and dep.operator_watches == {"ray"}
    before, _ = synth_facts(default_synth, operator_beside_the_ray_pods)
    assert {ns for subject, _, ns in before.bindings if subject == "sa:ray/kuberay-operator"} == {None, "ray"}
    assert before.operator_watches is None


def test_the_autoscaler_role_is_bound_to_the_heads_serviceaccount(default_synth):
    dep, _ = synth_facts(default_synth)
    ((rules, ns),) = [(r, n) for s, r, n in dep.bindings if s == "sa:ray/ray-head"]
    assert ns == "ray" and {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]} in rules


@pytest.mark.parametrize("rules, expected", [
    ([{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}], {"pods:ns"}),
    ([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}], {"pods:ns"}),
    ([{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}], {"pods:ns"}),
    ([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}], {"secrets:ns"}),
    ([{"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["patch"]}], {"pods:ns"}),
    ([{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}], {"sa:ns/*"}),
    ([{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"]}],
     {"cluster-admin"}),
    ([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], {"cluster-admin"}),
    ([{"apiGroups": [""], "resources": ["pods", "services", "configmaps"], "verbs": ["get", "list", "delete"]},
      {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create"]}],
     set()),
])
def test_what_rules_let_their_holder_become(rules, expected):
    assert set(capabilities(rules, "ns", lambda ns: True)) == expected


def test_kuberay_kinds_make_pods_only_where_the_operator_watches():
    rules = [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create"]}]
    assert capabilities(rules, "elsewhere", lambda ns: ns == "ray") == {}


def test_a_permission_the_model_does_not_know_is_refused():
    with pytest.raises(UnclassifiedPermission):
        capabilities([{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"],
                       "verbs": ["update"]}], "ns", lambda ns: True)


# ------------------------------------------------------------------------------- the platform's other identities
TUNNEL = "ssm:aws_instance.api_tunnel"
TUNNEL_ROLE = "aws_iam_role.api_tunnel"


def _reached(dep: esc.Deployment, start: str) -> set[str]:
    return set(esc.build_graph(dep).reach(start))


def test_a_session_on_the_api_tunnel_gives_the_apis_network_and_no_credentials(default_synth):
    """Whoever may ssm:StartSession on the tunnel instance gets a shell there: its role (SSM Agent's policy only, no
    access entry) and its network position, HTTPS to the private API endpoint -- where Kubernetes still asks for an
    identity the cluster knows."""
    dep, _ = synth_facts(default_synth)
    assert _reached(dep, TUNNEL) == {TUNNEL, f"iam:{TUNNEL_ROLE}", esc.API_NETWORK}


def _tunnel_role_is_cluster_admin(synth: dict) -> None:
    res = synth["infra"]["resource"]
    res["aws_eks_access_entry"]["api_tunnel"] = {"cluster_name": "${aws_eks_cluster.ray.name}",
                                                 "principal_arn": f"${{{TUNNEL_ROLE}.arn}}", "type": "STANDARD"}
    res["aws_eks_access_policy_association"] = {"api_tunnel_admin": {
        "principal_arn": "${aws_eks_access_entry.api_tunnel.principal_arn}", "access_scope": {"type": "cluster"},
        "policy_arn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"}}


def test_with_an_admin_access_entry_the_tunnels_role_would_be_cluster_admin(default_synth):
    """The tunnel carries no credentials only as long as its role has no access to the cluster: given an admin
    access entry, a session on it is cluster admin, and the model says so."""
    dep, _ = synth_facts(default_synth, _tunnel_role_is_cluster_admin)
    g = esc.build_graph(dep)
    seen = g.reach(TUNNEL)
    assert "cluster-admin" in seen
    assert "EKS access policy AmazonEKSClusterAdminPolicy" in g.path(seen, "cluster-admin")[-1]


def test_without_ssm_agents_policy_the_tunnel_takes_no_session(default_synth):
    def no_ssm(synth: dict) -> None:
        del synth["infra"]["resource"]["aws_iam_role_policy_attachment"]["api_tunnel_ssm"]

    dep, _ = synth_facts(default_synth, no_ssm)
    assert not [src for src, _, _ in dep.aws_edges if src.startswith("ssm:")]


def test_ssm_on_the_nodes_is_root_there(default_synth):
    """cluster.node_ssm_access (off by default) puts SSM Agent's policy on the node roles: a session is root on a
    node, which the model finds as soon as the policy is there."""
    dep, _ = synth_facts(default_synth)
    assert not [src for src, _, _ in dep.aws_edges if src.startswith("ssm:nodes/")]

    def node_ssm(synth: dict) -> None:
        synth["infra"]["resource"]["aws_iam_role_policy_attachment"]["node_gpu_ssm"] = {
            "role": "${aws_iam_role.node_gpu.name}",
            "policy_arn": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}

    dep, _ = synth_facts(default_synth, node_ssm)
    assert "node" in _reached(dep, "ssm:nodes/aws_iam_role.node_gpu")


KARPENTER = "pod-as:kube-system/karpenter"


def test_the_karpenter_controller_launches_instances_as_the_node_role(app_synth):
    """Its IRSA role may iam:PassRole the node role and ec2:RunInstances (the getting-started policy): code with
    its ServiceAccount launches instances that run as the node role -- the node, by design. Its chart's RBAC is not
    modelled: its ServiceAccount counts as cluster admin."""
    synth = app_synth("karpenter")
    dep, _ = synth_facts(synth)
    g = esc.build_graph(dep)
    seen = g.reach(KARPENTER)
    path = g.path(seen, "iam:aws_iam_role.karpenter_node")
    assert [step.split(" --")[0] for step in path] == [KARPENTER, "iam:aws_iam_role.karpenter_controller"]
    assert "iam:PassRole" in path[-1]
    assert "node" in seen and "cluster-admin" in seen

    def no_pass_role(s: dict) -> None:
        policy = s["infra"]["resource"]["aws_iam_role_policy"]["karpenter_controller"]
        doc = json.loads(policy["policy"])
        kept = [st for st in doc["Statement"] if st.get("Sid") != "AllowPassingInstanceRole"]
        assert len(kept) == len(doc["Statement"]) - 1
        policy["policy"] = json.dumps({**doc, "Statement": kept})

    dep, _ = synth_facts(synth, no_pass_role)
    assert "iam:aws_iam_role.karpenter_node" not in _reached(dep, KARPENTER)


def test_the_dcgm_exporter_is_root_on_its_node_and_holds_no_token(prod_synth):
    """The exporter runs as root with SYS_ADMIN (profiling metrics) and the kubelet's pod-resources directory: its
    code is root on the GPU node, as any privileged node agent's is; its ServiceAccount's token is not mounted."""
    dep, _ = synth_facts(prod_synth)
    start = "container:helm/nvidia-dcgm-exporter/dcgm-exporter/exporter"
    g = esc.build_graph(dep)
    seen = g.reach(start)
    assert "node" in seen and "hostPath pod-gpu-resources" in g.path(seen, "node")[0]
    assert "exporter adds SYS_ADMIN" in g.path(seen, "node")[0]
    assert not [n for n in seen if n.startswith(("sa:", "iam:", "secret:"))]


GRAFANA = "pod-as:monitoring/kube-prometheus-stack-grafana"


def test_grafana_reads_the_secrets_of_its_namespace_only(prod_synth):
    """rbac.namespaced (issue 21): the dashboard sidecar's rights are a Role in Grafana's namespace -- its admin
    Secret and the other Secrets there; with the chart's default ClusterRole it would read every Secret of the
    cluster, the Ray token among them."""
    dep, _ = synth_facts(prod_synth)
    secrets = {n for n in _reached(dep, GRAFANA) if n.startswith("secret:")}
    assert secrets == {"secret:monitoring/kube-prometheus-stack-grafana", "secret:monitoring/*",
                       "secret:monitoring/sh.helm.release.v1.kube-prometheus-stack"}

    def cluster_role(s: dict) -> None:
        s["ray"]["resource"]["helm_release"]["kube_prometheus_stack"]["values"].append(
            json.dumps({"grafana": {"rbac": {"namespaced": False}}}))

    dep, _ = synth_facts(prod_synth, cluster_role)
    reached = _reached(dep, GRAFANA)
    assert "secret:ray/kuberay" in reached and "secrets:kube-system" in reached


# ------------------------------------------------------------------------------------------ docs/security.md
def test_the_docs_say_what_each_identity_can_do_as_the_model_finds(default_synth, prod_synth, app_synth):
    """docs/security.md's identity table is the model's answer for the default deployment, then for what the prod
    and Karpenter examples add (esc.TABLE_CONFIGS)."""
    deps = [synth_facts(s)[0] for s in (default_synth, prod_synth, app_synth("karpenter"))]
    table = esc.identities_table(deps)
    assert esc.docs_block(esc.DOCS.read_text()) == table, \
        f"run: python -m tests.security.escalation (docs/security.md's identity table is stale):\n{table}"
    assert "| Ray code on a worker | - | ray_workload | ray/kuberay | no |" in table
    for name in ("API tunnel", "Karpenter controller", "DCGM exporter", "Grafana"):
        assert f"| {name}" in table or f" {name} " in table, name
