"""Who can become whom in a deployment: the graph of tests/k8s_authz.py built from a synth's objects.

Facts, and where each comes from:

- namespaces and their Pod Security level: ``kubernetes_namespace_v1`` labels; namespaces every cluster has (and
  EKS add-ons' own) have none, so they admit privileged pods;
- ServiceAccounts: ``kubernetes_service_account_v1`` (automount, IRSA annotation), each namespace's ``default``,
  the KubeRay operator chart's (its values), the one KubeRay creates for a RayCluster head that names none; charts
  and add-ons whose RBAC is not modelled count as ServiceAccounts that may do anything (``pod-as:<ns>/*``);
- RBAC: ``kubernetes_role_v1``/``_binding_v1``; the KubeRay operator chart's Roles/ClusterRole as the pinned chart
  renders them for our values (derived: tests/reference/rbac/kuberay-<version>.json); the Role KubeRay binds to a
  RayCluster's head ServiceAccount for the autoscaler (same file); EKS access entries (IAM role -> groups);
- IRSA: every IAM role whose trust policy names ``system:serviceaccount:<ns>:<name>`` subjects;
- Secrets: KubeRay's token Secret per token-auth RayCluster, Helm's release Secret per release,
  ``kubernetes_secret_v1``; in namespaces we do not fully model, any Secret (``secret:<ns>/*``);
- pods and their containers (tests/cluster_model's workloads: the RayCluster's as KubeRay builds them, the
  orchestrator's Jobs from its function's package, the rendered job objects);
- the node's instance metadata: reachable from pods unless every launch template requires IMDSv2 with hop limit 1;
- a Lambda function: what an invoker gets is what the function's code does with an event, found by invoking its
  ``run`` with a hostile event against a recorder (a function that creates the event's pod spec grants ``pods:``);
- charts other than KubeRay: a pod's security and a ServiceAccount's RBAC where the chart's facts record them
  (``pod_security``, ``rbac`` in tests/reference/charts/: the DCGM exporter, Grafana); the ServiceAccounts a chart or
  add-on creates for an IAM role (IRSA subjects) count as cluster admin otherwise (Karpenter, cluster-autoscaler...);
- AWS: the nodes' roles (node groups, EC2_LINUX access entries) are the node; an IAM policy that may iam:PassRole a
  role and ec2:RunInstances launches instances as it (Karpenter's controller and the node role); an admin access
  policy association makes its principal cluster admin; an instance whose role has AmazonSSMManagedInstanceCore
  takes Session Manager sessions (ssm-user may sudo): its role, and the networks its security group lets it reach
  (the API tunnel: the cluster security group, i.e. the private API endpoint, on 443).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from conventions.kubernetes import auth_secret_name
from lambdas import ray_orchestrator as fn
from scripts.derive_kuberay_rbac import DEFAULT_OUT as KUBERAY_RBAC
from tests.cluster_model import helm
from tests.cluster_model.facts import chart_facts, holds
from tests.cluster_model.workloads import function_jobs, manifest_workloads, release_values
from tests.helpers import REFERENCE, stack_items, tf_json
from tests.k8s_authz import Graph, capabilities, role_rules
from tests.orchestrator_objects import packaged_steps_at

from .pod_security import BASELINE_CAPABILITIES, allows_host_access, containers, enforced_level

EXISTING_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ADDON_NAMESPACES = {"amazon-cloudwatch-observability": "amazon-cloudwatch"}
KUBERAY_CHART = "kuberay-operator"
API_AUDIENCE = None  # a projected serviceAccountToken without audience: the API server's
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
UNMODELLED = "*"  # in pod-as:<ns>/* and secret:<ns>/*: what a chart or add-on we do not model may hold
SSM_POLICY = "AmazonSSMManagedInstanceCore"
# EKS access policies that make their principal cluster admin (EKS user guide, "Review access policy permissions").
ADMIN_ACCESS_POLICIES = ("AmazonEKSClusterAdminPolicy", "AmazonEKSAdminPolicy")
API_NETWORK = "network:kubernetes-api"  # reaches the API endpoint on 443 (Kubernetes still authenticates)


@dataclass
class Pod:
    key: str  # the cluster model's workload key
    namespace: str
    spec: dict
    secrets: set[str] = field(default_factory=set)  # Secrets KubeRay injects (its token) beyond the spec's own


@dataclass
class Deployment:
    namespaces: dict[str, str]  # name -> enforced Pod Security level
    ours: set[str]  # the namespaces this deployment creates
    service_accounts: dict[str, dict]  # "ns/name" -> {"automount": bool, "irsa": role or None}
    unmodelled: set[str]  # namespaces with ServiceAccounts whose rights are not modelled
    irsa: dict[str, set[str]]  # "ns/name" -> IAM roles trusting it
    bindings: list[tuple[str, list[dict], str | None]]  # (subject node, rules, namespace or None: cluster-wide)
    operator_watches: set[str] | None  # None: every namespace
    secrets: dict[str, set[str]]  # namespace -> Secret names (UNMODELLED: any)
    pods: list[Pod]
    functions: dict[str, tuple[fn.Pipeline, str]]  # function address -> (what it works with, its IAM role)
    access_entries: dict[str, list[str]]  # IAM role -> Kubernetes groups
    imds_open: bool
    chart_service_accounts: set[str] = field(default_factory=set)  # "ns/name": a chart's, its RBAC not modelled
    aws_edges: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, why): IAM, EKS, EC2 facts
    charts: dict[str, str] = field(default_factory=dict)  # chart -> the "ns/name" of its ServiceAccount, where known

    def watches(self, namespace: str) -> bool:
        return self.operator_watches is None or namespace in self.operator_watches or namespace == "*"


# ------------------------------------------------------------------------------------------ reading a synth
_REF = re.compile(r"^\$\{(?P<addr>[a-z0-9_]+\.[a-zA-Z0-9_]+)\.(?P<attr>[a-z_\[\]0-9.]+)\}$")


class Resolver:
    """Terraform references in a synth, resolved to what they name: a namespace's name, a resource's address."""

    def __init__(self, synth: dict) -> None:
        self.names: dict[str, str] = {}
        for _, stack in stack_items(synth):
            for key, ns in (stack.get("resource", {}).get("kubernetes_namespace_v1") or {}).items():
                self.names[f"kubernetes_namespace_v1.{key}"] = ns["metadata"]["name"]
            for key, sa in (stack.get("resource", {}).get("kubernetes_service_account_v1") or {}).items():
                self.names[f"kubernetes_service_account_v1.{key}"] = sa["metadata"]["name"]
            for key, role in (stack.get("resource", {}).get("kubernetes_role_v1") or {}).items():
                self.names[f"kubernetes_role_v1.{key}"] = role["metadata"]["name"]

    def name(self, value: str) -> str:
        m = _REF.match(value) if isinstance(value, str) else None
        if m and m.group("addr") in self.names:
            return self.names[m.group("addr")]
        if isinstance(value, str) and "${" in value:
            raise ValueError(f"a reference the model cannot resolve: {value}")
        return value

    @staticmethod
    def address(value: str) -> str:
        """``${aws_iam_role.x.arn}`` -> ``aws_iam_role.x``."""
        m = _REF.match(value) if isinstance(value, str) else None
        return m.group("addr") if m else value

    def literal(self, obj):
        if isinstance(obj, dict):
            return {k: self.literal(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.literal(v) for v in obj]
        m = _REF.match(obj) if isinstance(obj, str) else None
        return self.names.get(m.group("addr"), obj) if m else obj


def kuberay_rbac() -> dict:
    return json.loads(Path(KUBERAY_RBAC).read_text())


def _truthy(values: dict, path: str) -> bool:
    cur = values
    for part in path.split("."):
        cur = (cur or {}).get(part) if isinstance(cur, dict) else None
    return bool(cur)


def template_renders(condition: str, values: dict) -> bool:
    """The operator chart's template conditions, as they are written at the pinned version: ``and``/``not`` of
    ``.Values.x`` terms (anything else is refused)."""
    tokens = condition.replace("(", " ( ").replace(")", " ) ").split()

    def expr(i: int) -> tuple[bool, int]:
        t = tokens[i]
        if t == "(":
            v, i = expr(i + 1)
            assert tokens[i] == ")", condition
            return v, i + 1
        if t == "and":
            vals, i = [], i + 1
            while i < len(tokens) and tokens[i] != ")":
                v, i = expr(i)
                vals.append(v)
            return all(vals), i
        if t == "not":
            v, i = expr(i + 1)
            return not v, i
        if t.startswith(".Values."):
            return _truthy(values, t[len(".Values."):]), i + 1
        raise ValueError(f"a chart condition the model does not read: {condition!r}")

    value, end = expr(0)
    if end != len(tokens):
        raise ValueError(f"a chart condition the model does not read: {condition!r}")
    return value


def kuberay_values(release: dict, resolver: Resolver | None = None) -> dict:
    """The operator chart's values for this release: the pinned chart's defaults coalesced with ours, as Helm does
    (references among ours resolved: the watched namespace is the Ray namespace resource's name)."""
    defaults = json.loads((REFERENCE / "kuberay-operator.values.json").read_text())
    user = release_values(release, "kuberay_operator")
    return helm.coalesce(helm.Chart(KUBERAY_CHART, defaults), resolver.literal(user) if resolver else user)


def kuberay_operator(release: dict, namespace: str, facts: dict, resolver: Resolver) -> tuple[str, list,
                                                                                          set[str] | None]:
    """The operator's ServiceAccount, its bindings and the namespaces it watches, for this release's values."""
    values = kuberay_values(release, resolver)
    sa = f"{namespace}/{values['serviceAccount']['name']}"
    subject = f"sa:{sa}"
    single = _truthy(values, "singleNamespaceInstall")
    watched = [ns for ns in values.get("watchNamespace") or []]
    watches: set[str] | None = (set(watched) or {namespace}) if single else (set(watched) or None)
    rules = [{k: v for k, v in r.items() if k != "when"} for r in facts["chart"]["operator_rules"]]
    bindings: list[tuple[str, list[dict], str | None]] = []
    templates = facts["chart"]["templates"]
    for t in templates.values():
        if "role" not in t or not template_renders(t["when"], values):
            continue
        role = templates[t["role"]]
        granted = rules if role["rules"] == "operator" else role["rules"]
        if t["namespaces"] == "cluster-wide":
            bindings.append((subject, granted, None))
        elif t["namespaces"] == ".Release.Namespace":
            bindings.append((subject, granted, namespace))
        else:  # each of .Values.watchNamespace, default [.Release.Namespace]
            bindings += [(subject, granted, ns) for ns in (watched or [namespace])]
    return sa, bindings, watches


def _oidc_subjects(trust: dict) -> set[str]:
    out = set()
    for s in trust.get("Statement", []):
        if "Federated" not in (s.get("Principal") or {}):
            continue
        for test in ("StringEquals", "StringLike"):
            for key, value in ((s.get("Condition") or {}).get(test) or {}).items():
                if key.endswith(":sub"):
                    for v in [value] if isinstance(value, str) else value:
                        if not v.startswith("system:serviceaccount:"):
                            raise ValueError(f"an OIDC subject the model does not read: {v}")
                        out.add(v[len("system:serviceaccount:"):].replace(":", "/", 1))
    return out


def _secret_refs(container: dict, volumes: dict[str, dict]) -> set[str]:
    out = set()
    for e in container.get("env") or []:
        ref = ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
        if ref:
            out.add(ref)
    for e in container.get("envFrom") or []:
        if (e.get("secretRef") or {}).get("name"):
            out.add(e["secretRef"]["name"])
    for m in container.get("volumeMounts") or []:
        v = volumes.get(m["name"]) or {}
        if "secret" in v:
            out.add(v["secret"]["secretName"])
        for src in (v.get("projected") or {}).get("sources") or []:
            if "secret" in src:
                out.add(src["secret"]["name"])
    return out


def _holds_token(pod: Pod, container: dict, sa_automount: bool) -> bool:
    """Whether this container has its pod's ServiceAccount's API token: automounted into every container, or a
    projected serviceAccountToken for the API audience mounted into this one."""
    automount = pod.spec.get("automountServiceAccountToken")
    if automount is None:
        automount = sa_automount
    if automount:
        return True
    volumes = {v["name"]: v for v in pod.spec.get("volumes") or []}
    for m in container.get("volumeMounts") or []:
        for src in (volumes.get(m["name"], {}).get("projected") or {}).get("sources") or []:
            if "serviceAccountToken" in src and src["serviceAccountToken"].get("audience") == API_AUDIENCE:
                return True
    return False


def _host_access(spec: dict) -> list[str]:
    reasons = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    reasons += [f"privileged {c.get('name')}" for c in containers(spec)
                if (c.get("securityContext") or {}).get("privileged")]
    reasons += [f"hostPath {v['name']}" for v in spec.get("volumes") or [] if "hostPath" in v]
    for c in containers(spec):
        caps = ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
        added = set(caps) - BASELINE_CAPABILITIES
        if added:
            reasons.append(f"{c.get('name')} adds {', '.join(sorted(added))}")
    return reasons


def deployment(synth: dict, documents: dict[str, Iterable[dict]] | None = None) -> Deployment:
    """The facts of a synth (and of rendered job documents applied to it)."""
    r = Resolver(synth)
    namespaces: dict[str, str] = {n: "privileged" for n in EXISTING_NAMESPACES}
    ours: set[str] = set()
    service_accounts: dict[str, dict] = {}
    unmodelled: set[str] = {"kube-system"}  # EKS add-ons and charts there
    irsa: dict[str, set[str]] = {}
    bindings: list[tuple[str, list[dict], str | None]] = []
    operator_watches: set[str] | None = set()
    secrets: dict[str, set[str]] = {}
    pods: list[Pod] = []
    functions: dict[str, tuple[fn.Pipeline, str]] = {}
    access: dict[str, list[str]] = {}
    imds_open = False
    kuberay = None
    roles_by_name: dict[tuple[str, str], list[dict]] = {}
    charts: dict[str, str] = {}

    for _, stack in stack_items(synth):
        res = stack.get("resource", {})
        for ns in (res.get("kubernetes_namespace_v1") or {}).values():
            name = ns["metadata"]["name"]
            namespaces[name] = enforced_level(ns["metadata"].get("labels"))
            ours.add(name)
        for key, role in (res.get("aws_iam_role") or {}).items():
            for sub in _oidc_subjects(tf_json(role["assume_role_policy"], placeholder="X")):
                irsa.setdefault(sub, set()).add(f"aws_iam_role.{key}")
        for lt in (res.get("aws_launch_template") or {}).values():
            md = lt.get("metadata_options") or {}
            if md.get("http_endpoint") != "disabled" and (md.get("http_tokens") != "required"
                                                          or int(md.get("http_put_response_hop_limit") or 1) > 1):
                imds_open = True
        for entry in (res.get("aws_eks_access_entry") or {}).values():
            access.setdefault(Resolver.address(entry["principal_arn"]), []).extend(entry.get("kubernetes_groups") or [])
        for addon in (res.get("aws_eks_addon") or {}).values():
            ns = ADDON_NAMESPACES.get(addon["addon_name"], "kube-system")
            namespaces.setdefault(ns, "privileged")
            unmodelled.add(ns)
    for _, stack in stack_items(synth):
        res = stack.get("resource", {})
        for sa in (res.get("kubernetes_service_account_v1") or {}).values():
            ns = r.name(sa["metadata"]["namespace"])
            role = (sa["metadata"].get("annotations") or {}).get(IRSA_ANNOTATION)
            service_accounts[f"{ns}/{sa['metadata']['name']}"] = {
                "automount": sa.get("automount_service_account_token", True),
                "irsa": Resolver.address(role) if role else None}
        for key, role in (res.get("kubernetes_role_v1") or {}).items():
            roles_by_name[(r.name(role["metadata"]["namespace"]), f"kubernetes_role_v1.{key}")] = role_rules(role)
        for rtype in ("kubernetes_cluster_role_v1", "kubernetes_cluster_role_binding_v1"):
            if res.get(rtype):
                raise ValueError(f"{rtype}: cluster-wide RBAC of ours is not modelled")
        for secret in (res.get("kubernetes_secret_v1") or {}).values():
            secrets.setdefault(r.name(secret["metadata"]["namespace"]), set()).add(secret["metadata"]["name"])
        for rel in (res.get("helm_release") or {}).values():
            ns = r.name(rel["namespace"])
            namespaces.setdefault(ns, "privileged")
            secrets.setdefault(ns, set()).add(f"sh.helm.release.v1.{rel['name']}")
            if rel["chart"] == KUBERAY_CHART:
                kuberay = chart_facts(rel["chart"], str(rel["version"]))
                facts = kuberay_rbac()
                if facts["kuberay"] != f"v{rel['version']}":
                    raise ValueError(f"RBAC facts are of KubeRay {facts['kuberay']}, the release is {rel['version']}")
                sa, granted, operator_watches = kuberay_operator(rel, ns, facts, r)
                service_accounts[sa] = {"automount": True, "irsa": None}
                bindings += granted
                # The operator chart's pod (its own ServiceAccount) and what Pod Security reads of it.
                pods.append(Pod(f"helm/{rel['name']}/kuberay-operator", ns, operator_pod_security(rel)))
            else:
                unmodelled.add(ns)  # a chart whose other ServiceAccounts and Secrets the model does not know
                pods += _chart_facts(rel, key, ns, r, service_accounts, bindings, charts, secrets)
    for _, stack in stack_items(synth):
        res = stack.get("resource", {})
        for key, binding in (res.get("kubernetes_role_binding_v1") or {}).items():
            ns = r.name(binding["metadata"]["namespace"])
            ref = binding["role_ref"]
            rules = roles_by_name.get((ns, Resolver.address(ref["name"])))
            if ref.get("kind") != "Role" or rules is None:
                raise ValueError(f"kubernetes_role_binding_v1.{key}: binds a role the model does not have")
            for subject in binding.get("subject") or []:
                kind = subject["kind"]
                node = {"Group": f"group:{subject['name']}", "User": f"user:{subject['name']}",
                        "ServiceAccount": f"sa:{r.name(subject.get('namespace') or ns)}/{subject['name']}"}[kind]
                bindings.append((node, rules, ns))
        stack_dir = Path(synth["_outdir"]) / "stacks" / _stack_name(synth, stack) if synth.get("_outdir") else None
        for key, function in (res.get("aws_lambda_function") or {}).items():
            jobs = function_jobs(key, function, stack_dir)
            if not jobs:
                continue
            env = function["environment"]["variables"]
            ns = r.name(env["NAMESPACE"])
            assert stack_dir is not None  # function_jobs needs it
            pipeline = fn.Pipeline(namespace=ns, image=env.get("IMAGE", ""),
                                   steps=packaged_steps_at(stack_dir / function["filename"]))
            functions[f"aws_lambda_function.{key}"] = (pipeline, Resolver.address(function["role"]))
            pods += [Pod(w.key, ns, w.spec) for w in jobs]
        for m in (res.get("kubernetes_manifest") or {}).values():
            obj = r.literal(m["manifest"])
            ns = obj["metadata"].get("namespace", "default")
            pods += _manifest_pods(obj, ns, kuberay, service_accounts, secrets, bindings)
    for file, docs in (documents or {}).items():
        for doc in docs:
            ns = doc["metadata"].get("namespace", "default")
            if doc["kind"] == "ServiceAccount":
                service_accounts[f"{ns}/{doc['metadata']['name']}"] = {
                    "automount": doc.get("automountServiceAccountToken", True), "irsa": None}
            pods += _manifest_pods(doc, ns, kuberay, service_accounts, secrets, bindings, prefix=f"render_jobs/{file}/")
    for ns in namespaces:
        service_accounts.setdefault(f"{ns}/default", {"automount": True, "irsa": None})
        if ns in unmodelled:
            secrets.setdefault(ns, set()).add(UNMODELLED)
    # An IAM role trusting a ServiceAccount none of our objects creates: a chart's or add-on's (Karpenter's,
    # cluster-autoscaler's, the CSI driver's...), whose RBAC the model does not know.
    chart_sas = {sa for sa in irsa if sa not in service_accounts}
    for sa in chart_sas:
        service_accounts[sa] = {"automount": True, "irsa": None}
    return Deployment(namespaces=namespaces, ours=ours, service_accounts=service_accounts, unmodelled=unmodelled,
                      irsa=irsa, bindings=bindings, operator_watches=operator_watches, secrets=secrets, pods=pods,
                      functions=functions, access_entries=access, imds_open=imds_open, chart_service_accounts=chart_sas,
                      aws_edges=aws_edges(synth, r), charts=charts)


def _stack_name(synth: dict, stack: dict) -> str:
    return next(name for name, s in stack_items(synth) if s is stack)


def _manifest_pods(obj: dict, ns: str, kuberay, service_accounts: dict, secrets: dict, bindings: list,
                   prefix: str = "") -> list[Pod]:
    """The pods of a manifest; for a RayCluster also the Secret and ServiceAccount KubeRay creates and the Role it
    binds to the head's ServiceAccount for the autoscaler (rbac.go BuildRole, BuildRoleBinding)."""
    out = []
    for w in manifest_workloads(obj, obj["kind"], kuberay, prefix=prefix):
        pod = Pod(w.key, ns, w.spec)
        if obj["kind"] == "RayCluster":
            spec = obj["spec"]
            if (spec.get("authOptions") or {}).get("mode") == "token":
                # KubeRay creates the token Secret and injects it into the Ray containers, the autoscaler and the
                # wait-gcs-ready init container (common/pod.go configureTokenAuth, SetContainerTokenAuthEnvVars).
                name = auth_secret_name(obj["metadata"]["name"])
                secrets.setdefault(ns, set()).add(name)
                pod.secrets.add(name)
            if spec.get("enableInTreeAutoscaling"):
                head_sa = spec["headGroupSpec"]["template"]["spec"].get("serviceAccountName") or obj["metadata"]["name"]
                # KubeRay creates the head's ServiceAccount only when the template names none.
                service_accounts.setdefault(f"{ns}/{head_sa}", {"automount": True, "irsa": None})
        out.append(pod)
    if obj["kind"] == "RayCluster" and obj["spec"].get("enableInTreeAutoscaling"):
        facts = kuberay_rbac()["autoscaler"]
        head_sa = obj["spec"]["headGroupSpec"]["template"]["spec"].get("serviceAccountName") or obj["metadata"]["name"]
        bindings.append((f"sa:{ns}/{head_sa}", facts["role"]["rules"], ns))
    return out


def operator_pod_security(release: dict) -> dict:
    """The operator's pod as the chart renders what Pod Security reads of it (recorded in the chart's facts)."""
    rec = chart_facts(release["chart"], str(release["version"])).data["pod_security"]
    return chart_pod_security(rec, kuberay_values(release))


def chart_pod_security(rec: dict, values: dict) -> dict:
    """A chart's pod, what Pod Security and the graph read of it (a ``pod_security`` record), for these values."""
    for path in rec.get("unrecorded_when") or []:
        if helm.truthy(helm.get_path(values, path)):
            raise ValueError(f"{path} is set: what it changes in the pod is not recorded")

    def value(path: str):
        return copy.deepcopy(helm.get_path(values, path))

    spec: dict = {k: v for k, v in rec["pod_literals"].items()}
    if value(rec["pod_security_context"]):
        spec["securityContext"] = value(rec["pod_security_context"])
    spec["containers"] = [{"name": c["name"], **({"securityContext": value(c["security_context"])}
                                                 if value(c["security_context"]) else {})}
                          for c in rec["containers"]]
    spec["volumes"] = [{"name": v["name"], v["type"]: {}} for v in rec["volumes"]]
    return spec


def chart_rbac(rec: dict, values: dict, namespace: str) -> list[tuple[str, list[dict], str | None]]:
    """The bindings a chart's ``rbac`` record grants its ServiceAccount, for these values."""
    subject = f"sa:{namespace}/{rec['service_account']}"
    out: list[tuple[str, list[dict], str | None]] = []
    for b in rec["bindings"]:
        if not (holds(b.get("when"), values) and holds(b.get("when_any"), values, any_of=True)):
            continue
        rules = [r["rule"] for r in b["rules"] if holds(r.get("when_any"), values, any_of=True)]
        if rules:
            out.append((subject, rules, namespace if b["scope"] == "namespace" else None))
    return out


def _chart_facts(rel: dict, key: str, ns: str, r: Resolver, service_accounts: dict, bindings: list,
                 charts: dict, secrets: dict) -> list[Pod]:
    """What a chart's facts record beyond placement: its pod's security, its ServiceAccounts' RBAC and its Secrets
    (the chart's own and its enabled subcharts')."""
    facts = chart_facts(rel["chart"], str(rel["version"]))
    values = helm.coalesce(facts.chart, r.literal(release_values(rel, key)))
    scopes = [(facts.data, values, rel["chart"])]
    for dep in facts.data.get("dependencies") or []:
        if helm.condition_enabled(values, dep.get("condition")):
            scopes.append((dep, values.get(dep["key"]) or {}, dep.get("chart", dep["key"])))
    named = helm.get_path(values, "serviceAccount.name")
    if named:  # the ServiceAccount our values name (Karpenter's, which its IAM role trusts)
        charts[rel["chart"]] = f"{ns}/{named}"
    pods = []
    for data, vals, chart in scopes:
        rec = data.get("rbac")
        if rec is not None:
            sa = f"{ns}/{rec['service_account']}"
            automount = helm.truthy(helm.get_path(vals, rec["automount"])) if rec.get("automount") else True
            service_accounts[sa] = {"automount": automount, "irsa": None}
            bindings += chart_rbac(rec, vals, ns)
            charts[chart] = sa
        for secret in data.get("secrets") or []:
            if holds(secret.get("when"), vals):
                secrets.setdefault(ns, set()).add(secret["name"])
        rec = data.get("pod_security")
        if rec is not None:
            pods.append(Pod(f"helm/{rel['name']}/{rec['workload']}", ns, chart_pod_security(rec, vals)))
    return pods


def _role_arn_address(value: str, entries: dict[str, dict]) -> str:
    """An IAM principal as the graph names it: a role's address, or the literal ARN (an access entry's principal
    followed to what it names)."""
    m = _REF.match(value) if isinstance(value, str) else None
    if m and m.group("addr").startswith("aws_eks_access_entry."):
        return _role_arn_address(entries[m.group("addr").split(".", 1)[1]]["principal_arn"], entries)
    return Resolver.address(value)


def _actions(statement: dict) -> set[str]:
    a = statement.get("Action") or []
    return {a} if isinstance(a, str) else set(a)


def aws_edges(synth: dict, r: Resolver) -> list[tuple[str, str, str]]:
    """Who becomes whom through AWS: the nodes' roles, instances launched as a role, EKS admin access, Session
    Manager on an instance (see the module docstring)."""
    res: dict[str, dict] = {}
    for _, stack in stack_items(synth):
        for rtype, items in (stack.get("resource") or {}).items():
            res.setdefault(rtype, {}).update(items)
    out: list[tuple[str, str, str]] = []
    entries = res.get("aws_eks_access_entry") or {}
    node_roles = {Resolver.address(g["node_role_arn"]) for g in (res.get("aws_eks_node_group") or {}).values()}
    node_roles |= {_role_arn_address(e["principal_arn"], entries) for e in entries.values()
                   if e.get("type") == "EC2_LINUX"}
    for role in sorted(node_roles):
        out.append((f"iam:{role}", "node", "the role the nodes run as"))
    for p in (res.get("aws_iam_role_policy") or {}).values():
        role = Resolver.address(p["role"])
        statements = [s for s in tf_json(p["policy"]).get("Statement", []) if s.get("Effect") == "Allow"]
        launches = any(_actions(s) & {"ec2:RunInstances", "ec2:CreateFleet", "ec2:*", "*"} for s in statements)
        for s in statements:
            if not _actions(s) & {"iam:PassRole", "iam:*", "*"}:
                continue
            passed = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
            for target in passed:
                if "*" in target:
                    raise ValueError(f"{role}: iam:PassRole on {target}: the model does not expand wildcards")
                if launches:
                    out.append((f"iam:{role}", f"iam:{Resolver.address(target)}",
                                "iam:PassRole on it and ec2:RunInstances: launches instances that run as it"))
    for assoc in (res.get("aws_eks_access_policy_association") or {}).values():
        policy = assoc["policy_arn"].rsplit("/", 1)[-1]
        if policy not in ADMIN_ACCESS_POLICIES:
            raise ValueError(f"EKS access policy {policy}: not modelled")
        out.append((f"iam:{_role_arn_address(assoc['principal_arn'], entries)}", "cluster-admin",
                    f"EKS access policy {policy}"))
    ssm_roles = {Resolver.address(a["role"]) for a in (res.get("aws_iam_role_policy_attachment") or {}).values()
                 if a["policy_arn"].endswith(f"/{SSM_POLICY}")}
    profiles = {f"aws_iam_instance_profile.{k}": Resolver.address(v["role"])
                for k, v in (res.get("aws_iam_instance_profile") or {}).items()}
    egress = res.get("aws_vpc_security_group_egress_rule") or {}
    for key, instance in (res.get("aws_instance") or {}).items():
        role = profiles.get(Resolver.address(instance.get("iam_instance_profile", "")))
        if role not in ssm_roles:
            continue
        target = f"ssm:aws_instance.{key}"
        out.append((target, f"iam:{role}", "a Session Manager shell on it (ssm-user may sudo): its instance "
                                           "profile's credentials from instance metadata"))
        groups = {Resolver.address(g) for g in instance.get("vpc_security_group_ids") or []}
        for rule in egress.values():
            if (Resolver.address(rule["security_group_id"]) in groups
                    and "cluster_security_group_id" in str(rule.get("referenced_security_group_id"))
                    and int(rule.get("from_port", 0)) <= 443 <= int(rule.get("to_port", 0))):
                out.append((target, API_NETWORK, "its security group: HTTPS to the cluster security group (the "
                                                 "private API endpoint, where Kubernetes still authenticates)"))
    for role in sorted(node_roles & ssm_roles):
        out.append((f"ssm:nodes/{role}", "node", "a Session Manager shell on a node (ssm-user may sudo): root there"))
    return out


# ------------------------------------------------------------------------------------------ the graph
HOSTILE_IMAGE = "attacker.example/probe"


def function_takes_pod_specs(pipeline: fn.Pipeline, run: Callable | None = None) -> bool:
    """Invoke the function's code with a hostile event (a Job of the invoker's, its image, another ServiceAccount)
    against a recorder: does anything of the invoker's reach an object the function creates?"""
    run = run or fn.run
    hostile = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "probe-job", "namespace": pipeline.namespace},
               "spec": {"template": {"spec": {"serviceAccountName": "probe-sa", "restartPolicy": "Never",
                                              "containers": [{"name": "probe", "image": HOSTILE_IMAGE}]}}}}
    sent: list = []

    def send(req):
        sent.append(req)
        if req.body is None:
            raise fn.KubernetesApiError("probe: reads are not answered", status=404)
        return {"metadata": {**req.body.get("metadata", {}), "uid": "probe"}}

    event = {"action": "submit", "step": next(iter(sorted(pipeline.steps)), "probe"), "run_id": "probe",
             "job_name": "probe-job", "job": hostile, "image": HOSTILE_IMAGE, "serviceAccountName": "probe-sa",
             "namespace": "kube-system"}
    with contextlib.suppress(fn.KubernetesApiError):  # a refusal: what it sent before is what counts
        run(event, pipeline, send)
    return any(HOSTILE_IMAGE in json.dumps(req.body) or "probe-sa" in json.dumps(req.body)
               for req in sent if req.body is not None)


def build_graph(dep: Deployment, function_run: Callable | None = None) -> Graph:
    g = Graph()
    universe = sorted(dep.namespaces)
    sas_in: dict[str, list[str]] = {}
    for sa in dep.service_accounts:
        sas_in.setdefault(sa.split("/", 1)[0], []).append(sa)
    bindings = dep.bindings
    for ns in universe:
        pods = f"pods:{ns}"
        for sa in sorted(sas_in.get(ns, [])):
            g.add(pods, f"pod-as:{sa}", "a pod with that serviceAccountName")
        if ns in dep.unmodelled:
            g.add(pods, f"pod-as:{ns}/{UNMODELLED}", "a chart's or add-on's ServiceAccount (rights not modelled)")
            g.add(f"pod-as:{ns}/{UNMODELLED}", "cluster-admin", "assumed: its rights are not modelled")
        g.add(pods, f"secrets:{ns}", "mount any Secret of the namespace")
        if allows_host_access(dep.namespaces[ns]):
            g.add(pods, "node", f"Pod Security of {ns} is privileged: privileged, hostNetwork, hostPath")
        if dep.imds_open:
            g.add(pods, "node", "the node's instance metadata is reachable from pods")
        for secret in sorted(dep.secrets.get(ns, ())):
            g.add(f"secrets:{ns}", f"secret:{ns}/{secret}", "read")
    for sa in dep.service_accounts:
        g.add(f"pod-as:{sa}", f"sa:{sa}", "mount its token")
        if sa in dep.chart_service_accounts:
            g.add(f"sa:{sa}", "cluster-admin", "assumed: a chart's or add-on's ServiceAccount (RBAC not modelled)")
        for role in sorted(dep.irsa.get(sa, ())):
            g.add(f"pod-as:{sa}", f"iam:{role}", "a web-identity token for a role that trusts it (IRSA)")
    for subject, rules, ns in bindings:
        scopes = [ns] if ns is not None else universe
        for scope in scopes:
            for node, why in capabilities(rules, scope, dep.watches).items():
                if node.endswith("/*") and node.startswith("sa:"):
                    for sa in sas_in.get(scope, []):
                        g.add(subject, f"sa:{sa}", why)
                else:
                    g.add(subject, node, f"{why} ({'cluster-wide' if ns is None else 'in ' + ns})")
    for role, groups in dep.access_entries.items():
        for group in groups:
            g.add(f"iam:{role}", f"group:{group}", "EKS access entry")
    for pod in dep.pods:
        sa = f"{pod.namespace}/{pod.spec.get('serviceAccountName') or 'default'}"
        facts = dep.service_accounts.get(sa, {"automount": True, "irsa": None})
        volumes = {v["name"]: v for v in pod.spec.get("volumes") or []}
        host = _host_access(pod.spec)
        for c in containers(pod.spec):
            node = f"container:{pod.key}/{c['name']}"
            g.add(node, node, "itself")
            if _holds_token(pod, c, facts["automount"]):
                g.add(node, f"sa:{sa}", "its ServiceAccount's token is mounted")
            if facts.get("irsa") and facts["irsa"] in dep.irsa.get(sa, set()):
                g.add(node, f"iam:{facts['irsa']}", "IRSA: the web-identity token the webhook injects")
            for secret in sorted(_secret_refs(c, volumes) | pod.secrets):
                g.add(node, f"secret:{pod.namespace}/{secret}", "the container references it")
            if host:
                g.add(node, "node", ", ".join(host))
            if dep.imds_open:
                g.add(node, "node", "the node's instance metadata is reachable from pods")
    for address, (pipeline, _role) in dep.functions.items():
        if function_takes_pod_specs(pipeline, function_run):
            g.add(f"invoke:{address}", f"pods:{pipeline.namespace}", "the function creates the event's Job")
        else:
            g.add(f"invoke:{address}", f"invoke:{address}", "its own steps' Jobs only")
    for src, dst, why in dep.aws_edges:
        g.add(src, dst, why)
    g.add("cluster-admin", "node", "anything")
    return g


def ray_containers(dep: Deployment, namespace: str) -> list[str]:
    return sorted(f"container:{p.key}/{c['name']}" for p in dep.pods if p.namespace == namespace
                  for c in containers(p.spec))


@dataclass(frozen=True)
class Allowed:
    """What a foothold may reach: pods of these namespaces, these IAM roles, these Secrets (ns/name)."""

    pods: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()

    def forbidden(self, node: str) -> bool:
        kind, _, rest = node.partition(":")
        if node in ("node", "cluster-admin"):
            return True
        if kind == "pods":
            return rest not in self.pods
        if kind == "iam":
            return rest not in self.roles
        if kind == "secret":
            return rest not in self.secrets
        return False


def escalations(g: Graph, start: str, allowed: Allowed) -> list[list[str]]:
    """Every forbidden node ``start`` reaches, each as the path to it."""
    seen = g.reach(start)
    return [g.path(seen, node) for node in sorted(seen) if allowed.forbidden(node)]


# ------------------------------------------------------------------------------------------ docs/security.md
DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
DOCS_BEGIN = "<!-- identities: generated by python -m tests.security.escalation -->"
DOCS_END = "<!-- identities end -->"


def identities(dep: Deployment) -> dict[str, str]:
    """The identities docs/security.md describes (name -> graph node), for the deployment at hand."""
    ray = next((p.namespace for p in dep.pods if p.key.startswith("RayCluster/")), "ray")
    out: dict[str, str] = {}
    for c in ray_containers(dep, ray):
        if c.endswith("/head/ray-head"):
            out["Ray code on the head (job drivers)"] = c
        elif c.endswith("/ray-worker"):
            out.setdefault("Ray code on a worker", c)
        elif c.endswith("/head/autoscaler"):
            out["The Ray autoscaler (the head's ServiceAccount)"] = c
        elif c.startswith("container:lambda/"):
            out.setdefault("An orchestrator step's submitter pod", c)
    out[f"Any pod someone creates in namespace {ray}"] = f"pods:{ray}"
    for address, (_, role) in sorted(dep.functions.items()):
        out["A principal that may invoke the orchestrator function"] = f"invoke:{address}"
        out["The orchestrator function's own role"] = f"iam:{role}"
    for subject, _, _ in dep.bindings:
        if subject.endswith("/kuberay-operator"):
            out["The KubeRay operator"] = subject
    # What the deployment has with some settings only (the config that brings it in parentheses).
    for src in sorted({src for src, _, _ in dep.aws_edges if src.startswith("ssm:aws_instance.")}):
        out["Whoever may ssm:StartSession on the API tunnel instance (`endpoint_access: tunnel`)"] = src
    if "karpenter" in dep.charts:
        out["The Karpenter controller (`autoscaler: karpenter`)"] = f"pod-as:{dep.charts['karpenter']}"
    if "dcgm-exporter" in dep.charts:
        ns, sa = dep.charts["dcgm-exporter"].split("/")
        pod = next(p for p in dep.pods if p.namespace == ns and p.spec.get("serviceAccountName") == sa)
        out["The DCGM exporter (`dcgm_exporter`)"] = f"container:{pod.key}/{next(containers(pod.spec))['name']}"
    if "grafana" in dep.charts:
        out["Grafana (`kube_prometheus_stack`)"] = f"pod-as:{dep.charts['grafana']}"
    return out


def _short(node: str) -> str:
    return node.split(":", 1)[1].replace("aws_iam_role.", "")


def identities_table(deps: list[Deployment]) -> str:
    """One row per identity of the deployments, each from the first deployment that has it (the default first)."""
    rows = ["| identity | creates pods in | IAM roles | Secrets | node or cluster admin |",
            "| --- | --- | --- | --- | --- |"]
    done: set[str] = set()
    for dep in deps:
        g = build_graph(dep)
        for name, start in identities(dep).items():
            if name in done:
                continue
            done.add(name)
            seen = set(g.reach(start))
            admin = "cluster-admin" in seen
            pods = ["any"] if admin else sorted(_short(n) for n in seen if n.startswith("pods:"))
            roles = sorted(_short(n) for n in seen if n.startswith("iam:") and n != start)
            secrets = ["any"] if admin else sorted(_short(n) for n in seen if n.startswith("secret:"))
            host = "cluster admin" if admin else "node" if "node" in seen else "no"
            rows.append(f"| {name} | {', '.join(pods) or '-'} | {', '.join(roles) or '-'} | "
                        f"{', '.join(secrets) or '-'} | {host} |")
    return "\n".join(rows)


def docs_block(text: str) -> str:
    start, end = text.index(DOCS_BEGIN) + len(DOCS_BEGIN), text.index(DOCS_END)
    return text[start:end].strip()


# The deployments the table is made of: the default, then the examples that bring in what the default lacks (Grafana
# and the DCGM exporter with prod, Karpenter with karpenter-gpu).
TABLE_CONFIGS = (None, "prod-gpu.yaml", "karpenter-gpu.yaml")


def main() -> int:
    """Rewrite docs/security.md's identity table from the models of TABLE_CONFIGS' deployments."""
    import sys
    import tempfile

    from config import AppConfig, load_config
    from scripts.render_jobs import documents, job_props
    from tests.helpers import EXAMPLES, load_stacks, run_app

    deps = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(TABLE_CONFIGS):
            out = Path(tmp) / str(i) / "cdktf.out"
            config = EXAMPLES / name if name else None
            r = run_app(config, outdir=out)
            if r.returncode != 0:
                print(f"error: synth of {name or 'the defaults'} failed: {r.stderr[-2000:]}", file=sys.stderr)
                return 1
            cfg = load_config(str(config)) if config else AppConfig()
            synth: dict = {**load_stacks(out), "_outdir": out}
            deps.append(deployment(synth, documents(job_props(cfg, image="registry.example/ray:render"))))
        table = identities_table(deps)
    text = DOCS.read_text()
    start, end = text.index(DOCS_BEGIN) + len(DOCS_BEGIN), text.index(DOCS_END)
    DOCS.write_text(f"{text[:start]}\n{table}\n{text[end:]}")
    print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
