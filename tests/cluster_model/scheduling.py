"""The scheduler's filters, for one pod spec against one node (pure functions on Kubernetes-shaped dicts).

What kube-scheduler checks before a pod binds, and nothing it only prefers:

- ``nodeSelector``: every key=value is a node label;
- required node affinity: ``nodeSelectorTerms`` are OR'ed, the ``matchExpressions`` of a term AND'ed
  (In, NotIn, Exists, DoesNotExist, Gt, Lt; kubernetes pkg/apis/core/v1/helper NodeSelectorRequirementsAsSelector);
- taints: every NoSchedule/NoExecute taint of the node needs a matching toleration (PreferNoSchedule is a
  preference; kubernetes staging/src/k8s.io/api/core/v1/toleration.go ``ToleratesTaint``);
- resources: the pod's effective request, max(largest init container, sum of containers) per resource
  (kubernetes pkg/api/v1/resource ``PodRequests``), with a container's missing request defaulted to its
  limit (pkg/apis/core/v1/defaults.go ``SetDefaults_Pod``), within what the node has left.

Preferred affinity, pod (anti-)affinity and topology spread move pods between nodes of a group, never out of it:
they are not modelled (a required pod (anti-)affinity is refused, so nothing is silently ignored).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

CPU, MEMORY, PODS = "cpu", "memory", "pods"

# Tolerations the DaemonSet controller adds to every DaemonSet pod (kubernetes pkg/controller/daemon/util
# AddOrUpdateDaemonPodTolerations); none of them tolerates a taint of ours, but a DaemonSet pod carries them.
DAEMONSET_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


class NotModelled(Exception):
    """The input uses something this model does not evaluate: refuse rather than guess."""


# ------------------------------------------------------------------------------------------ quantities
_SUFFIX = {
    "": Decimal(1), "m": Decimal("0.001"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eE]([+-]?\d+))?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


def quantity(value: object) -> Decimal:
    """A Kubernetes quantity (``"100m"``, ``"1.5"``, ``"512Mi"``, ``"1e3"``, ``2``) in base units."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    m = _QUANTITY_RE.match(str(value).strip())
    if not m:
        raise ValueError(f"not a quantity: {value!r}")
    number, exponent, suffix = m.groups()
    q = Decimal(number) * _SUFFIX[suffix or ""]
    return q * (Decimal(10) ** int(exponent)) if exponent else q


def canonical(resource: str, value: object) -> int:
    """Integer units the model adds up in: CPU in millicores, everything else in base units (bytes, counts),
    both rounded up as the API server does."""
    q = quantity(value)
    if resource == CPU:
        q *= 1000
    return int(math.ceil(q))


@dataclass(frozen=True)
class Resources:
    """Amounts per resource name, in ``canonical`` units (missing names are 0)."""

    amounts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, mapping: dict | None) -> Resources:
        return cls({k: canonical(k, v) for k, v in (mapping or {}).items()})

    def get(self, name: str) -> int:
        return self.amounts.get(name, 0)

    def __add__(self, other: Resources) -> Resources:
        names = set(self.amounts) | set(other.amounts)
        return Resources({n: self.get(n) + other.get(n) for n in names})

    def __sub__(self, other: Resources) -> Resources:
        names = set(self.amounts) | set(other.amounts)
        return Resources({n: self.get(n) - other.get(n) for n in names})

    def maximum(self, other: Resources) -> Resources:
        names = set(self.amounts) | set(other.amounts)
        return Resources({n: max(self.get(n), other.get(n)) for n in names})

    def shortfalls(self, available: Resources) -> list[str]:
        """Resources this request needs more of than ``available`` offers, worded for a failure message."""
        out = []
        for name in sorted(self.amounts):
            need, have = self.get(name), available.get(name)
            if need > have:
                out.append(f"insufficient {name}: needs {describe(name, need)}, {describe(name, have)} free")
        return out

    def __str__(self) -> str:
        return ", ".join(f"{n}={describe(n, v)}" for n, v in sorted(self.amounts.items()) if v) or "nothing"


def describe(name: str, amount: int) -> str:
    if name == CPU:
        return f"{amount}m"
    if name == MEMORY or name.startswith("ephemeral-storage"):
        return f"{amount / 2 ** 20:.0f}Mi"
    return str(amount)


def container_requests(container: dict) -> Resources:
    """A container's requests after API defaulting: a resource with a limit and no request requests its limit."""
    res = container.get("resources") or {}
    requests = dict(res.get("limits") or {})
    requests.update(res.get("requests") or {})
    return Resources.of(requests)


def pod_requests(spec: dict) -> Resources:
    """What the scheduler reserves for a pod: max(largest init container, sum of containers) per resource
    (sidecar init containers, restartPolicy Always, are not modelled), plus the pod's overhead."""
    for c in spec.get("initContainers") or []:
        if c.get("restartPolicy") == "Always":
            raise NotModelled(f"sidecar init container {c.get('name')!r} (restartPolicy: Always)")
    total = Resources()
    for c in spec.get("containers") or []:
        total = total + container_requests(c)
    for c in spec.get("initContainers") or []:
        total = total.maximum(container_requests(c))
    return total + Resources.of(spec.get("overhead"))


# ------------------------------------------------------------------------------------------ selection
def matches_node_selector(selector: dict | None, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == str(v) for k, v in (selector or {}).items())


def matches_expression(expr: dict, labels: dict[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], [str(v) for v in expr.get("values") or []]
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            label, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return label > bound if op == "Gt" else label < bound
    raise NotModelled(f"node selector operator {op!r}")


def matches_term(term: dict, labels: dict[str, str]) -> bool:
    """One nodeSelectorTerm: its expressions AND'ed; a term with none matches no node."""
    if term.get("matchFields"):
        raise NotModelled("nodeSelectorTerms[].matchFields (selects nodes by name)")
    exprs = term.get("matchExpressions") or []
    return bool(exprs) and all(matches_expression(e, labels) for e in exprs)


def required_node_affinity(spec: dict) -> list[dict] | None:
    """The required nodeSelectorTerms, or None when the pod has no required node affinity."""
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        if (affinity.get(kind) or {}).get("requiredDuringSchedulingIgnoredDuringExecution"):
            raise NotModelled(f"required {kind}")
    required = (affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return list(required.get("nodeSelectorTerms") or [])


def matches_node_affinity(spec: dict, labels: dict[str, str]) -> bool:
    terms = required_node_affinity(spec)
    return terms is None or any(matches_term(t, labels) for t in terms)


def tolerates(toleration: dict, taint: dict) -> bool:
    """``Toleration.ToleratesTaint``: effect (empty: any), key (empty: any, with Exists), then value."""
    effect, key = toleration.get("effect") or "", toleration.get("key") or ""
    if effect and effect != taint["effect"]:
        return False
    if key and key != taint["key"]:
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return str(toleration.get("value") or "") == str(taint.get("value") or "")
    return False


def untolerated_taints(tolerations: list[dict], taints: list[dict]) -> list[dict]:
    """The node's NoSchedule/NoExecute taints that no toleration matches (PreferNoSchedule only prefers)."""
    return [t for t in taints if t["effect"] in ("NoSchedule", "NoExecute")
            and not any(tolerates(tol, t) for tol in tolerations)]


def taint_text(taint: dict) -> str:
    value = taint.get("value")
    return f"{taint['key']}{'=' + str(value) if value else ''}:{taint['effect']}"


def selection_problem(spec: dict, labels: dict[str, str], taints: list[dict],
                      extra_tolerations: tuple[dict, ...] = ()) -> str | None:
    """Why the pod may not go to a node with these labels and taints (None: it may), resources aside."""
    selector = spec.get("nodeSelector") or {}
    if not matches_node_selector(selector, labels):
        missing = {k: v for k, v in selector.items() if labels.get(k) != str(v)}
        return f"nodeSelector {missing} does not match the node's labels"
    if not matches_node_affinity(spec, labels):
        return "required node affinity matches none of the node's labels"
    bad = untolerated_taints([*(spec.get("tolerations") or []), *extra_tolerations], taints)
    if bad:
        return "untolerated taint " + ", ".join(taint_text(t) for t in bad)
    return None
