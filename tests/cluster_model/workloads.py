"""Every pod-producing object the deployment creates, as pod specs: from the synthesized stacks (EKS add-ons, Helm
releases, Kubernetes manifests, the orchestrator's Step Functions Jobs) and from scripts/render_jobs.py.

Keys name where a pod spec comes from: ``addon/<add-on>/<workload>``, ``helm/<release>/<workload>``,
``sfn/<state machine>/<state>`` (a Job in a state's parameters), ``lambda/<function>/<step>`` (the orchestrator
function's packaged step Jobs), ``<Kind>/<name>[/<part>]`` for manifests (``RayCluster/kuberay/worker/gpu-group``),
``render_jobs/<file>/<Kind>/<name>[/<part>]`` for the rendered documents. Anything that could make pods and is
not understood here is refused (``NotModelled``), so no pod producer goes unchecked.
"""

from __future__ import annotations

import copy
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.helpers import stack_items, tf_json

from . import helm
from .facts import Facts, addon_facts, chart_facts
from .scheduling import NotModelled

# Kinds whose objects carry a pod template, and where it is.
TEMPLATE_PATHS = {
    "Deployment": ("spec", "template", "spec"), "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"), "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"), "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"), "Pod": ("spec",),
}
# Kinds that make no pods (a new kind must be added to one list or the other).
NO_POD_KINDS = frozenset({
    "ConfigMap", "Secret", "Service", "ServiceAccount", "Namespace", "Role", "RoleBinding", "ClusterRole",
    "ClusterRoleBinding", "PersistentVolume", "PersistentVolumeClaim", "StorageClass", "NetworkPolicy",
    "PodDisruptionBudget", "PriorityClass", "ResourceQuota", "LimitRange", "PodMonitor", "ServiceMonitor",
    "PrometheusRule", "CustomResourceDefinition", "HorizontalPodAutoscaler", "Ingress",
    "NodePool", "EC2NodeClass",  # Karpenter's: they make nodes (tests/cluster_model/nodes.py), not pods
})
# Typed kubernetes-provider resources that make pods: the model reads manifests, so these are refused.
_POD_RESOURCE_RE = re.compile(r"^kubernetes_(deployment|daemon_?set|stateful_set|replication_controller|job|"
                              r"cron_job|pod)(_v\d+)?$")
RUN_JOB = "arn:aws:states:::eks:runJob"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"


@dataclass(frozen=True)
class Workload:
    key: str
    kind: str  # DaemonSet, Deployment, StatefulSet, Job, Pod (KubeRay's pods), ...
    spec: dict  # the pod spec, Kubernetes-shaped
    source: str  # the resource or document it came from
    advertises: tuple[str, ...] = ()
    provides_csi_driver: str | None = None
    requests_verified: bool = True

    @property
    def is_daemonset(self) -> bool:
        return self.kind == "DaemonSet"


# ------------------------------------------------------------------------------------------ charts and add-ons
def release_values(release: dict, key: str) -> dict:
    """A helm_release's user values: its ``values`` documents merged as Helm merges ``-f`` files."""
    for unsupported in ("set", "set_list", "set_sensitive", "set_wo"):
        if release.get(unsupported):
            raise NotModelled(f"helm_release.{key}: `{unsupported}` blocks (the model reads `values` only)")
    return helm.merge_documents(*(yaml.safe_load(doc) for doc in release.get("values") or []))


def release_facts(release: dict, key: str) -> Facts:
    facts = chart_facts(release["chart"], str(release.get("version")))
    if facts.data.get("repository") != release.get("repository"):
        raise NotModelled(f"helm_release.{key}: repository {release.get('repository')} is not the recorded "
                          f"{facts.data.get('repository')}")
    return facts


def release_workloads(key: str, release: dict) -> list[Workload]:
    facts = release_facts(release, key)
    source = f"helm_release.{key} ({release['chart']} {release.get('version')})"
    return [Workload(key=w.id, kind=w.kind, spec=w.spec, source=source, advertises=w.advertises,
                     provides_csi_driver=w.provides_csi_driver, requests_verified=w.requests_verified)
            for w in facts.render(release_values(release, key), f"helm/{release['name']}")]


def addon_workloads(key: str, addon: dict) -> list[Workload]:
    name = addon["addon_name"]
    facts = addon_facts(name)
    version = addon.get("addon_version") or "default"
    if version.startswith("${data.aws_eks_addon_version."):
        version = "most_recent"  # resolved at plan time to the newest build for the cluster's Kubernetes
    if version not in facts.data.get("covers_addon_versions", []):
        raise NotModelled(f"aws_eks_addon.{key}: {name} {version} is not a version the recorded facts cover "
                          f"({', '.join(facts.data.get('covers_addon_versions', []))})")
    values = json.loads(addon["configuration_values"]) if addon.get("configuration_values") else {}
    source = f"aws_eks_addon.{key} ({name} {version})"
    return [Workload(key=w.id, kind=w.kind, spec=w.spec, source=source, advertises=w.advertises,
                     provides_csi_driver=w.provides_csi_driver, requests_verified=w.requests_verified)
            for w in facts.render(values, f"addon/{name}")]


# ------------------------------------------------------------------------------------------ manifests
def _dig(obj: dict, path: tuple[str, ...]) -> dict:
    cur = obj
    for p in path:
        cur = cur.get(p) or {}
    return cur


def manifest_workloads(obj: dict, source: str, kuberay: Facts | None, prefix: str = "") -> list[Workload]:
    """The pods a Kubernetes object makes, with what the operator of a KubeRay kind adds to them."""
    kind, name = obj.get("kind"), (obj.get("metadata") or {}).get("name", "?")
    base = f"{prefix}{kind}/{name}"
    if kind in TEMPLATE_PATHS:
        spec = _dig(obj, TEMPLATE_PATHS[kind])
        if not spec.get("containers"):
            raise NotModelled(f"{base}: no pod template at {'.'.join(TEMPLATE_PATHS[kind])}")
        return [Workload(key=base, kind=kind, spec=copy.deepcopy(spec), source=source)]
    if kind in ("RayCluster", "RayJob"):
        if kuberay is None:
            raise NotModelled(f"{base}: a KubeRay object, and no kuberay-operator release to say what it adds")
        ops = kuberay.data["operator_pods"]
        if kind == "RayCluster":
            return [Workload(key=f"{base}/{part}", kind="Pod", spec=spec, source=source)
                    for part, spec in raycluster_pods(obj["spec"], ops["raycluster"])]
        return [Workload(key=f"{base}/{part}", kind=k, spec=spec, source=source)
                for part, k, spec in rayjob_pods(obj["spec"], ops)]
    if kind in NO_POD_KINDS:
        return []
    raise NotModelled(f"{base}: kind {kind} (list it in workloads.TEMPLATE_PATHS or NO_POD_KINDS)")


def _at(obj: dict, path: str):
    for part in path.split("."):
        obj = (obj or {}).get(part)
    return obj


def raycluster_pods(spec: dict, op: dict) -> list[tuple[str, dict]]:
    """Head and worker pod specs as KubeRay builds them (autoscaler sidecar; wait-gcs-ready init container), with
    what of them Pod Security and the escalation model read (securityContext, mounts)."""
    for name in op.get("unrecorded_when") or []:
        if spec.get(name):
            raise NotModelled(f"RayCluster spec.{name}: what KubeRay adds to the pods for it is not recorded")
    head = copy.deepcopy(spec["headGroupSpec"]["template"]["spec"])
    if spec.get("enableInTreeAutoscaling"):
        c = op["head_autoscaler_container"]
        override = _at({"spec": spec}, c["resources_override"])
        sidecar = {"name": c["name"], "resources": copy.deepcopy(override or c["resources"])}
        security = _at({"spec": spec}, c["security_context_override"])
        mounts = _at({"spec": spec}, c["volume_mounts_from"])
        if security:
            sidecar["securityContext"] = copy.deepcopy(security)
        if mounts:
            sidecar["volumeMounts"] = copy.deepcopy(mounts)
        head["containers"] = [*head.get("containers", []), sidecar]
    pods = [("head", head)]
    for group in spec.get("workerGroupSpecs") or []:
        w = copy.deepcopy(group["template"]["spec"])
        c = op["worker_init_container"]
        injected = {"name": c["name"], "resources": copy.deepcopy(c["resources"])}
        if c.get("security_context_from") == "ray_container" and _sc_of_first(w):
            injected["securityContext"] = copy.deepcopy(_sc_of_first(w))
        w["initContainers"] = [*w.get("initContainers", []), injected]
        pods.append((f"worker/{group['groupName']}", w))
    return pods


def _sc_of_first(pod: dict) -> dict | None:
    return ((pod.get("containers") or [{}])[0]).get("securityContext")


def rayjob_pods(spec: dict, ops: dict) -> list[tuple[str, str, dict]]:
    mode = spec.get("submissionMode") or "K8sJobMode"
    out: list[tuple[str, str, dict]] = []
    if mode == "K8sJobMode":
        template = (spec.get("submitterPodTemplate") or {}).get("spec")
        if template is None:
            template = {"containers": [copy.deepcopy(ops["rayjob"]["default_submitter_container"])]}
        out.append(("submitter", "Job", copy.deepcopy(template)))
    elif mode != "HTTPMode":
        raise NotModelled(f"RayJob submissionMode {mode}")
    if spec.get("rayClusterSpec"):
        out += [(f"cluster/{part}", "Pod", s) for part, s in raycluster_pods(spec["rayClusterSpec"], ops["raycluster"])]
    return out


def state_machine_jobs(key: str, machine: dict) -> list[Workload]:
    """The Kubernetes Jobs an ASL definition starts: with eks:runJob, or through the orchestrator's function
    (lambda:invoke with action submit), in every nested branch."""
    definition = machine["definition"]
    asl = tf_json(definition) if isinstance(definition, str) else definition
    out: list[Workload] = []

    def started_job(state: dict) -> dict | None:
        resource, params = str(state.get("Resource", "")), state.get("Parameters") or {}
        if resource.startswith(RUN_JOB):
            return params["Job"]
        payload = params.get("Payload") or {}
        if resource.startswith(LAMBDA_INVOKE) and "job" in payload:
            if payload.get("action") == "submit":
                return payload["job"]  # a function that creates the Job it is handed
            raise NotModelled(f"aws_sfn_state_machine.{key}: a function call with a Job whose action is not submit")
        return None  # the orchestrator's function builds its Jobs itself: function_jobs

    def walk(states: dict, path: str) -> None:
        for name, state in states.items():
            job = started_job(state)
            if job is not None:
                spec = _dig(job, TEMPLATE_PATHS["Job"])
                out.append(Workload(key=f"sfn/{key}/{path}{name}", kind="Job", spec=copy.deepcopy(spec),
                                    source=f"aws_sfn_state_machine.{key}"))
            for branch in state.get("Branches") or []:
                walk(branch.get("States") or {}, f"{path}{name}/")
            for nested in ("Iterator", "ItemProcessor"):
                if state.get(nested):
                    walk(state[nested].get("States") or {}, f"{path}{name}/")

    walk(asl.get("States") or {}, "")
    return out


def function_jobs(key: str, function: dict, stack_dir: Path | None) -> list[Workload]:
    """The Jobs a Lambda function creates from the step templates packaged with it (the orchestrator's
    STEPS_FILE), as its code builds them; a function without that file makes none."""
    from lambdas import ray_orchestrator as fn

    if stack_dir is None:
        raise NotModelled(f"aws_lambda_function.{key}: its package is not at hand (no synth output directory)")
    with zipfile.ZipFile(stack_dir / function["filename"]) as zf:
        if fn.STEPS_FILE not in zf.namelist():
            return []
        steps = json.loads(zf.read(fn.STEPS_FILE))
    env = (function.get("environment") or {}).get("variables") or {}
    pipeline = fn.Pipeline(namespace=env.get("NAMESPACE", "?"), image=env.get("IMAGE", "?"), steps=steps)
    return [Workload(key=f"lambda/{key}/{step}", kind="Job",
                     spec=fn.step_job(pipeline, step, "model", f"model-{step}")["spec"]["template"]["spec"],
                     source=f"aws_lambda_function.{key} ({fn.STEPS_FILE})") for step in sorted(steps)]


# ------------------------------------------------------------------------------------------ whole synth
def kuberay_facts(synth: dict) -> Facts | None:
    for _, stack in stack_items(synth):
        for key, rel in (stack.get("resource", {}).get("helm_release") or {}).items():
            if rel.get("chart") == "kuberay-operator":
                return release_facts(rel, key)
    return None


def synth_workloads(synth: dict) -> list[Workload]:
    kuberay = kuberay_facts(synth)
    out: list[Workload] = []
    for stack_name, stack in stack_items(synth):
        res = stack.get("resource", {})
        typed = sorted(t for t in res if _POD_RESOURCE_RE.match(t))
        if typed:
            raise NotModelled(f"stack {stack_name}: {', '.join(typed)} (write pod producers as manifests)")
        for key, addon in (res.get("aws_eks_addon") or {}).items():
            out += addon_workloads(key, addon)
        for key, rel in (res.get("helm_release") or {}).items():
            out += release_workloads(key, rel)
        for key, machine in (res.get("aws_sfn_state_machine") or {}).items():
            out += state_machine_jobs(key, machine)
        outdir = synth.get("_outdir")
        for key, function in (res.get("aws_lambda_function") or {}).items():
            out += function_jobs(key, function, Path(outdir) / "stacks" / stack_name if outdir else None)
        for key, m in (res.get("kubernetes_manifest") or {}).items():
            out += manifest_workloads(m["manifest"], f"kubernetes_manifest.{key}", kuberay)
    return out


def document_workloads(documents: dict[str, Iterable[dict]], kuberay: Facts | None) -> list[Workload]:
    """Workloads of rendered documents (scripts/render_jobs.py ``documents``), keyed under render_jobs/<file>/."""
    out: list[Workload] = []
    for file, docs in documents.items():
        for doc in docs:
            out += manifest_workloads(doc, f"render_jobs {file}", kuberay, prefix=f"render_jobs/{file}/")
    return out


def claim_drivers(synth: dict) -> dict[str, str]:
    """PersistentVolumeClaim name -> CSI driver of the PersistentVolume bound to it (the ray stack's static PV)."""
    out = {}
    for _, stack in stack_items(synth):
        for pv in (stack.get("resource", {}).get("kubernetes_persistent_volume_v1") or {}).values():
            for spec in pv.get("spec") or []:
                csi = ((spec.get("persistent_volume_source") or {}).get("csi") or {})
                claim = spec.get("claim_ref") or {}
                if csi.get("driver") and claim.get("name"):
                    out[claim["name"]] = csi["driver"]
    return out
