"""Kubernetes RBAC, as the API server decides a request: the request's attributes from its method and path (the
apiserver's RequestInfoFactory: verb, API group, resource, subresource, namespace, name), then whether one rule of a
namespaced Role allows them (rbac/v1 rule matching: verbs, apiGroups, resources incl. ``resource/subresource``,
resourceNames; a Role grants nothing outside its namespace). No API server needed: this is the decision alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
