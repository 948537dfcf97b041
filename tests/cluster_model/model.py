"""The cluster model: where every workload of a deployment lands, computed from its synthesized stacks.

1. Nodes: one per (node group, instance type) of the infra stack (``nodes.py``).
2. DaemonSets: a DaemonSet pod goes to every node whose labels and taints it accepts (its pods being scheduled
   per node); what they request is taken from each node before anything else, and a DaemonSet that advertises
   an extended resource (the NVIDIA device plugin) makes its nodes offer it: nvidia.com/gpu = the node's GPUs.
3. Every other pod: the nodes it is accepted by *and* fits on (requests within allocatable minus the node's
   DaemonSets, a pod slot left), whose CSI volumes have their driver's node plugin running there.

Results name the reason for every node a workload misses, so a failing test says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .nodes import GPU_RESOURCE, Node, nodes_of_synth
from .scheduling import (
    DAEMONSET_TOLERATIONS,
    PODS,
    NotModelled,
    Resources,
    pod_requests,
    selection_problem,
)
from .workloads import Workload, claim_drivers, document_workloads, kuberay_facts, synth_workloads


@dataclass(frozen=True)
class Placement:
    workload: Workload
    problems: dict[str, str | None]  # node name -> why the pod cannot run there (None: it can)
    groups_of: dict[str, str] = field(repr=False)  # node name -> node group

    @property
    def nodes(self) -> frozenset[str]:
        return frozenset(n for n, p in self.problems.items() if p is None)

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self.groups_of[n] for n in self.nodes)

    def explain(self) -> str:
        return "; ".join(f"{n}: {p or 'OK'}" for n, p in sorted(self.problems.items()))


class ClusterModel:
    def __init__(self, nodes: list[Node], workloads: list[Workload], claims: dict[str, str]) -> None:
        keys = [w.key for w in workloads]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise NotModelled(f"two workloads share a key: {', '.join(dupes)}")
        self.nodes = {n.name: n for n in nodes}
        self.workloads = {w.key: w for w in workloads}
        self.claims = claims
        self._groups_of = {n.name: n.group for n in nodes}
        self.daemonsets = {k: self._place_daemonset(w) for k, w in self.workloads.items() if w.is_daemonset}
        self.offered = {name: self._offered(node) for name, node in self.nodes.items()}
        self.placements = {k: (self.daemonsets[k] if w.is_daemonset else self._place_pod(w))
                           for k, w in self.workloads.items()}

    @classmethod
    def from_synth(cls, synth: dict, documents: dict[str, Iterable[dict]] | None = None,
                   kubernetes_version: str | None = None) -> ClusterModel:
        """The model of a session synth, plus rendered documents (``render_jobs.documents``) applied to it."""
        workloads = synth_workloads(synth)
        if documents:
            workloads += document_workloads(documents, kuberay_facts(synth))
        return cls(nodes_of_synth(synth, kubernetes_version), workloads, claim_drivers(synth))

    # -------------------------------------------------------------------------------------------- placement
    def _place_daemonset(self, w: Workload) -> Placement:
        problems = {name: selection_problem(w.spec, node.labels, node.taints, DAEMONSET_TOLERATIONS)
                    for name, node in self.nodes.items()}
        return Placement(w, problems, self._groups_of)

    def daemonsets_on(self, node: str) -> list[Workload]:
        return [self.workloads[k] for k, p in self.daemonsets.items() if node in p.nodes]

    def _offered(self, node: Node) -> Resources:
        """What the node offers pods: allocatable plus extended resources of the device plugins on it."""
        extended = {r for w in self.daemonsets_on(node.name) for r in w.advertises}
        unknown = extended - {GPU_RESOURCE}
        if unknown:
            raise NotModelled(f"extended resources {sorted(unknown)}")
        gpus = node.gpus if GPU_RESOURCE in extended else 0
        return node.allocatable + Resources({GPU_RESOURCE: gpus})

    def daemonset_requests(self, node: str) -> Resources:
        """Requests of the DaemonSet pods on a node, one pod slot each."""
        total = Resources()
        for w in self.daemonsets_on(node):
            total = total + pod_requests(w.spec) + Resources({PODS: 1})
        return total

    def free(self, node: str) -> Resources:
        return self.offered[node] - self.daemonset_requests(node)

    def required_csi_drivers(self, spec: dict) -> set[str]:
        drivers = set()
        for v in spec.get("volumes") or []:
            if "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims:
                    raise NotModelled(f"volume {v.get('name')}: claim {claim} is bound to no PersistentVolume "
                                      "the stacks create")
                drivers.add(self.claims[claim])
            elif "csi" in v:
                drivers.add(v["csi"]["driver"])
            elif "ephemeral" in v:
                raise NotModelled(f"volume {v.get('name')}: generic ephemeral volume")
        return drivers

    def _place_pod(self, w: Workload) -> Placement:
        need = pod_requests(w.spec) + Resources({PODS: 1})
        drivers = self.required_csi_drivers(w.spec)
        problems: dict[str, str | None] = {}
        for name, node in self.nodes.items():
            problem = selection_problem(w.spec, node.labels, node.taints)
            if problem is None:
                short = need.shortfalls(self.free(name))
                problem = "; ".join(short) if short else None
            if problem is None:
                served = {d.provides_csi_driver for d in self.daemonsets_on(name)}
                missing = sorted(drivers - served)
                if missing:
                    problem = f"no CSI node plugin for {', '.join(missing)} runs on the node"
            problems[name] = problem
        return Placement(w, problems, self._groups_of)

    # -------------------------------------------------------------------------------------------- summaries
    def daemonset_overhead(self) -> dict[str, Resources]:
        """Per node group: the requests of the DaemonSet pods landing on its nodes (the largest over the group's
        instance types), pod slots included. For a cross-check of a synth-time overhead table."""
        out: dict[str, Resources] = {}
        for name, node in self.nodes.items():
            r = self.daemonset_requests(name)
            out[node.group] = out[node.group].maximum(r) if node.group in out else r
        return out

    def unverified_daemonsets(self) -> dict[str, list[str]]:
        """Per node group: DaemonSets on it whose requests are not verified upstream (their sum is a lower bound)."""
        out: dict[str, list[str]] = {}
        for name, node in self.nodes.items():
            keys = sorted(w.key for w in self.daemonsets_on(name) if not w.requests_verified)
            out[node.group] = sorted(set(out.get(node.group, [])) | set(keys))
        return out

    def daemonset_fit_problems(self) -> dict[str, list[str]]:
        """Nodes whose DaemonSet pods do not all fit (they would stay Pending or preempt)."""
        out = {}
        for name in self.nodes:
            short = self.daemonset_requests(name).shortfalls(self.offered[name])
            if short:
                out[name] = short
        return out

    def groups(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for node in self.nodes.values():
            out.setdefault(node.group, []).append(node)
        return out
