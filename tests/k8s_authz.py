"""Kubernetes RBAC, as the API server decides a request: the request's attributes from its method and path (the
apiserver's RequestInfoFactory: verb, API group, resource, subresource, namespace, name), then whether one rule of a
namespaced Role allows them (rbac/v1 rule matching: verbs, apiGroups, resources incl. ``resource/subresource``,
resourceNames; a Role grants nothing outside its namespace). No API server needed: this is the decision alone.

Below it, the graph of who can become whom that tests/security/escalation.py builds from a deployment: what a set
of rules lets its holder become (``capabilities``), and the search (``Graph.reach``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestInfo:
    verb: str
    api_group: str
    resource: str
    subresource: str
    namespace: str | None  # None: a cluster-scoped request
    name: str


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_info(method: str, path: str, query: Mapping[str, str] | None = None) -> RequestInfo:
    """``GET /apis/batch/v1/namespaces/ray/jobs/x`` -> get batch jobs "x" in ray (resource requests only)."""
    query = query or {}
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        raise ValueError(f"not a resource request: {path}")
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:  # namespaces/<ns>/<resource>...
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:  # the namespace object itself
        namespace = rest[1]
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else "", "/".join(rest[2:])
    if method in _VERBS:
        verb = _VERBS[method]
    elif method in ("GET", "HEAD"):
        verb = "get" if name else ("watch" if str(query.get("watch", "")).lower() in ("1", "true") else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        raise ValueError(f"unknown method {method}")
    return RequestInfo(verb, group, resource, sub, namespace, name)


def allows(rule: Mapping[str, Sequence[str]], info: RequestInfo) -> bool:
    def has(key: str, value: str) -> bool:
        values = rule.get(key) or []
        return "*" in values or value in values

    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    names = rule.get("resourceNames") or []
    return (has("verbs", info.verb) and has("apiGroups", info.api_group) and has("resources", resource)
            and (not names or info.name in names))


def role_allows(rules: Sequence[Mapping[str, Sequence[str]]], role_namespace: str, info: RequestInfo) -> bool:
    """A Role (bound in its namespace) allows the request: same namespace and one rule matches."""
    return info.namespace == role_namespace and any(allows(r, info) for r in rules)


def role_rules(role_resource: dict) -> list[dict]:
    """The rules of a synthesized ``kubernetes_role_v1`` in the API's spelling (apiGroups, resources, verbs...)."""
    keys = {"api_groups": "apiGroups", "resources": "resources", "verbs": "verbs", "resource_names": "resourceNames"}
    return [{keys[k]: v for k, v in r.items() if k in keys} for r in role_resource["rule"]]


# ------------------------------------------------------------------------------------------ who can become whom
# A graph over identities and capabilities: an edge A -> B means "whoever is A can become, or act as, B". Nodes:
#   sa:<ns>/<name>     holds the ServiceAccount's API rights (its token)
#   pod-as:<ns>/<name> runs code of its choosing in a pod of that ServiceAccount (then: its token, a web-identity
#                      token for any IAM role trusting it, the Secrets it mounts)
#   pods:<ns>          creates pods of any spec in the namespace (Pod Security admission permitting)
#   secrets:<ns>       reads every Secret of the namespace; secret:<ns>/<name> one Secret
#   group:<name>       a Kubernetes group; iam:<role> an IAM role; node: root on a node; cluster-admin
#   invoke:<function>  may invoke a Lambda function; container:<workload>/<name> code in one of our containers
# Edges carry the reason, so a path found reads as the escalation it is.
@dataclass
class Graph:
    edges: dict[str, dict[str, str]]  # node -> {next node: why}

    def __init__(self) -> None:
        self.edges = {}

    def add(self, src: str, dst: str, why: str) -> None:
        self.edges.setdefault(src, {}).setdefault(dst, why)
        self.edges.setdefault(dst, {})

    def reach(self, start: str) -> dict[str, tuple[str, str] | None]:
        """Every node reachable from ``start``: node -> (previous node, why), None for the start."""
        seen: dict[str, tuple[str, str] | None] = {start: None}
        todo = [start]
        while todo:
            node = todo.pop(0)
            for nxt, why in sorted(self.edges.get(node, {}).items()):
                if nxt not in seen:
                    seen[nxt] = (node, why)
                    todo.append(nxt)
        return seen

    @staticmethod
    def path(seen: dict[str, tuple[str, str] | None], node: str) -> list[str]:
        """The steps from the start to ``node``: ``A --why--> B`` each."""
        steps: list[str] = []
        while seen[node] is not None:
            prev, why = seen[node]  # type: ignore[misc]
            steps.append(f"{prev} --[{why}]--> {node}")
            node = prev
        return list(reversed(steps))


# Kinds that make pods from a template: whoever may create or change one makes pods of its choosing (the controller
# creates them with the template's ServiceAccount, in the object's namespace).
POD_CONTROLLERS = {("", "pods"), ("", "replicationcontrollers"), ("apps", "deployments"), ("apps", "daemonsets"),
                   ("apps", "statefulsets"), ("apps", "replicasets"), ("batch", "jobs"), ("batch", "cronjobs")}
# KubeRay's kinds: the operator makes pods of them, in their namespace, where it watches.
KUBERAY_KINDS = {("ray.io", "rayclusters"), ("ray.io", "rayjobs"), ("ray.io", "rayservices"),
                 ("ray.io", "raycronjobs")}
WRITE = {"create", "update", "patch"}
# Run code inside an existing pod (its ServiceAccount, mounts): exec/attach, ephemeral containers.
POD_CODE_SUBRESOURCES = {("pods/exec", "create"), ("pods/exec", "get"), ("pods/attach", "create"),
                         ("pods/attach", "get"), ("pods/ephemeralcontainers", "patch"),
                         ("pods/ephemeralcontainers", "update")}
READ = {"get", "list", "watch"}
# What grants no identity beyond the holder's: reads of anything but Secrets, writes of objects that run nothing.
# (Roles and RoleBindings: the API server refuses one that grants more than its creator holds, unless the creator
# has bind or escalate -- RBAC's privilege escalation prevention -- so create/update/delete of them is no edge.)
HARMLESS_WRITES = {
    ("", "services"), ("", "services/status"), ("", "services/proxy"), ("", "pods/proxy"), ("", "pods/status"),
    ("", "pods/resize"), ("", "persistentvolumeclaims"), ("", "configmaps"), ("", "events"), ("", "serviceaccounts"),
    ("events.k8s.io", "events"), ("coordination.k8s.io", "leases"), ("discovery.k8s.io", "endpointslices"),
    ("networking.k8s.io", "ingresses"), ("extensions", "ingresses"), ("networking.k8s.io", "networkpolicies"),
    ("networking.k8s.io", "ingressclasses"), ("gateway.networking.k8s.io", "gateways"),
    ("gateway.networking.k8s.io", "httproutes"), ("route.openshift.io", "routes"), ("cert-manager.io", "certificates"),
    ("cert-manager.io", "certificates/status"), ("cert-manager.io", "issuers"), ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"), ("scheduling.k8s.io", "podgroups"),
    ("scheduling.k8s.io", "workloads"), ("scheduling.volcano.sh", "podgroups"), ("scheduling.x-k8s.io", "podgroups"),
    *((g, f"{k}/status") for g, k in KUBERAY_KINDS), *((g, f"{k}/finalizers") for g, k in KUBERAY_KINDS),
}


class UnclassifiedPermission(Exception):
    """A permission the graph has no rule for: the model refuses to guess whether it escalates."""


def capabilities(rules: Sequence[Mapping[str, Sequence[str]]], namespace: str | None,
                 operator_watches: Callable[[str], bool]) -> dict[str, str]:
    """What a set of RBAC rules, in ``namespace`` (None: cluster-wide, expand it to every namespace yourself and
    pass each), lets its holder become: graph node -> why. ``operator_watches(ns)``: whether KubeRay's operator
    reconciles that namespace (then its kinds make pods there)."""
    out: dict[str, str] = {}
    ns = namespace or "*"
    for rule in rules:
        if rule.get("resourceNames"):
            continue  # named objects only: none of ours is a pod controller or a Secret with a name to steal
        verbs, groups, resources = set(rule["verbs"]), set(rule["apiGroups"]), set(rule["resources"])
        if "*" in verbs or "*" in groups or "*" in resources or verbs & {"bind", "escalate", "impersonate"}:
            out.setdefault("cluster-admin", f"{sorted(verbs)} on {sorted(groups)} {sorted(resources)}")
            continue
        for group in groups:
            for resource in resources:
                kind = (group, resource)
                if verbs & WRITE and kind in POD_CONTROLLERS:
                    out.setdefault(f"pods:{ns}", f"{'/'.join(sorted(verbs & WRITE))} {resource}")
                elif verbs & WRITE and kind in KUBERAY_KINDS:
                    if operator_watches(ns):
                        out.setdefault(f"pods:{ns}",
                                       f"{'/'.join(sorted(verbs & WRITE))} {resource} (the operator makes pods)")
                elif group == "" and any((resource, v) in POD_CODE_SUBRESOURCES for v in verbs):
                    out.setdefault(f"pods:{ns}", f"{resource} (code in existing pods)")
                elif kind == ("", "secrets"):
                    if verbs & READ:
                        out.setdefault(f"secrets:{ns}", f"{'/'.join(sorted(verbs & READ))} secrets")
                    elif not verbs <= {"create", "delete", "deletecollection", "update", "patch"}:
                        raise UnclassifiedPermission(f"{sorted(verbs)} secrets")
                elif kind == ("", "serviceaccounts/token") and "create" in verbs:
                    out[f"sa:{ns}/*"] = "create serviceaccounts/token"
                elif kind == ("", "nodes/proxy"):
                    out["node"] = "nodes/proxy (the kubelet API)"
                elif verbs <= READ | {"delete", "deletecollection"} or kind in HARMLESS_WRITES:
                    continue  # reading (not Secrets), deleting, or writing what runs nothing
                else:
                    raise UnclassifiedPermission(f"{sorted(verbs)} on {group or 'core'}/{resource}")
    return out
