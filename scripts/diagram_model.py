"""The architecture the synthesized stacks describe, as a few dataclasses: the MODEL step of the diagram.

``read_architecture(synth_dir)`` reads ``<synth-dir>/stacks/*/cdk.tf.json`` (what Terraform applies) and returns an
:class:`Architecture`. Everything in it comes from that JSON: a part that is configured off is absent from the
stacks, so it is ``None`` / empty here and the picture does not show it. Standard library only (no drawing here:
``scripts/diagram.py`` renders this with the ``diagrams`` package).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conventions.kubernetes import GPU_RESOURCE, head_service_name
from conventions.ray import DASHBOARD_PORT

INTERPOLATION = re.compile(r"\$\{[^{}]*\}")
S3_PATH = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<prefix>.*)$")
RESOURCE_REF = re.compile(r"^\$\{(?P<type>[a-z0-9_]+)\.(?P<name>[a-z0-9_]+)\.[a-z0-9_\[\]]+\}$")
NAMESPACE_REF = re.compile(r"^\$\{(?P<type>kubernetes_namespace(?:_v1)?)\.(?P<name>[a-z0-9_]+)\.metadata\[0\]\.name\}$")

# Helm charts the picture knows by role (any other release still shows, by its name).
KUBERAY_CHART = "kuberay-operator"
AUTOSCALER_CHART = "cluster-autoscaler"
DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
DCGM_EXPORTER_CHART = "dcgm-exporter"
KARPENTER_CHART = "karpenter"
# Charts that make no pods (Karpenter's CRDs): not drawn.
NO_POD_CHARTS = ("karpenter-crd",)
PROMETHEUS_CHART = "kube-prometheus-stack"
CONTAINER_INSIGHTS_ADDON = "amazon-cloudwatch-observability"


class SynthError(Exception):
    """The synth directory is missing or not what the stacks write."""


@dataclass(frozen=True)
class Network:
    existing: bool  # an existing VPC passed in: the stacks create no aws_vpc
    vpc_id: str | None  # the existing VPC's id (None when the stack creates the VPC)
    cidr: str | None  # the created VPC's CIDR
    private_subnets: int  # subnets the cluster's nodes live in
    az_count: int | None  # distinct AZs of those subnets (None: not known from the JSON, existing subnets)
    az_names: tuple[str, ...]  # the AZ names when the config fixes them (else looked up at plan time: empty)
    nat_gateways: int


@dataclass(frozen=True)
class EksCluster:
    name: str
    version: str


@dataclass(frozen=True)
class NodeGroup:
    name: str
    instance_types: tuple[str, ...]
    min_size: int
    max_size: int
    gpu: bool  # an NVIDIA AMI or the nvidia.com/gpu taint
    spot: bool
    labels: tuple[tuple[str, str], ...]
    autoscaled: bool  # tagged for the cluster-autoscaler's auto-discovery, or a Karpenter NodePool
    karpenter: bool = False  # a Karpenter NodePool (its nodes launched by Karpenter), not an EKS managed node group

    def matches(self, selector: dict[str, str]) -> bool:
        return bool(selector) and set(selector.items()) <= set(self.labels)


@dataclass(frozen=True)
class RayGroup:
    name: str  # "head" or the worker group's name
    min_replicas: int
    max_replicas: int
    cpu: str
    memory: str
    gpus: int
    node_selector: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RayCluster:
    name: str
    namespace: str
    head: RayGroup
    workers: tuple[RayGroup, ...]
    image: str
    image_from_ecr: bool  # the image is the stack's ECR repository (ray.image.source build)
    dashboard_port: int
    autoscaling: bool  # in-tree Ray autoscaler
    fsx_claim: str | None  # the PVC its pods mount
    fsx_mounts: tuple[str, ...]  # where the head mounts that claim ("/ray/import (ro)" when read-only)

    @property
    def head_service(self) -> str:
        return head_service_name(self.name)


@dataclass(frozen=True)
class DataRepository:
    file_system_path: str  # "/import"
    s3_prefix: str  # "ray/import/"
    imports: bool  # S3 -> FSx (auto import)
    exports: bool  # FSx -> S3 (auto export)


@dataclass(frozen=True)
class Fsx:
    deployment_type: str
    capacity_gib: int
    repositories: tuple[DataRepository, ...]


@dataclass(frozen=True)
class Orchestrator:
    name: str  # the Step Functions state machine's name
    integrations: tuple[str, ...]  # the service integrations its tasks call ("lambda:invoke", "eks:runJob")
    submits_to: tuple[str, ...]  # the Ray head services its definition submits jobs to (ray job submit --address)
    function: str | None = None  # the Lambda function its tasks invoke (its name)
    function_in_vpc: bool = False  # the function runs in the VPC (reaches the private API endpoint)


@dataclass(frozen=True)
class HelmRelease:
    name: str
    chart: str
    version: str
    node_selector: tuple[tuple[str, str], ...]
    namespace: str = ""  # where it installs ("" when not known from the JSON)
    watches: tuple[str, ...] = ()  # the only namespaces it acts in (the KubeRay chart's single-namespace mode)


@dataclass(frozen=True)
class ApiTunnel:
    """An instance the deployer port-forwards through with Session Manager (`make tunnel`) to a private endpoint."""

    instance_type: str
    inbound_rules: int  # ingress rules on its security groups (0: no port open to it at all)
    ssm_endpoints: tuple[str, ...]  # the VPC interface endpoints it reaches Systems Manager by ("ssm", ...); empty:
    #                                 none created (an existing VPC: its NAT gateway or its own endpoints)
    local_address: str | None  # where the ray stacks' providers connect (https://127.0.0.1:<port>), when literal


@dataclass(frozen=True)
class ApiAccess:
    """How the deployer's machine reaches the Kubernetes API: what the stacks open for it (one of the three in a
    synth of this project, cluster.endpoint_access; all empty when none)."""

    public_cidrs: tuple[str, ...]  # the public endpoint's allowed sources (empty: no public endpoint)
    network_cidrs: tuple[str, ...]  # networks (VPN, peering, Direct Connect) admitted to the private endpoint on 443
    tunnel: ApiTunnel | None


@dataclass(frozen=True)
class Architecture:
    region: str | None
    network: Network
    cluster: EksCluster
    node_groups: tuple[NodeGroup, ...]
    fsx: Fsx | None
    data_bucket: str | None  # the bucket the FSx data repositories link (its name, or "<prefix>*")
    ecr_repository: str | None
    image_build: str | None  # a CodeBuild project's name
    releases: tuple[HelmRelease, ...]
    ray: RayCluster | None
    orchestrator: Orchestrator | None
    container_insights: bool
    api_access: ApiAccess

    def release(self, chart: str) -> HelmRelease | None:
        return next((r for r in self.releases if r.chart == chart), None)

    @property
    def kuberay_operator(self) -> HelmRelease | None:
        return self.release(KUBERAY_CHART)

    @property
    def cluster_autoscaler(self) -> HelmRelease | None:
        return self.release(AUTOSCALER_CHART)

    @property
    def karpenter(self) -> HelmRelease | None:
        return self.release(KARPENTER_CHART)

    @property
    def device_plugin(self) -> HelmRelease | None:
        return self.release(DEVICE_PLUGIN_CHART)

    @property
    def kube_prometheus_stack(self) -> HelmRelease | None:
        return self.release(PROMETHEUS_CHART)

    def node_group_for(self, selector: tuple[tuple[str, str], ...]) -> NodeGroup | None:
        """The node group whose labels a pod's nodeSelector picks (None: no selector or no match)."""
        return next((g for g in self.node_groups if g.matches(dict(selector))), None)


def model_digest(arch: Architecture) -> str:
    """What the picture shows, as one hash (frozen dataclasses: a stable repr); stamped into the PNG, so a test can
    tell a committed picture that no longer matches the default synth."""
    import hashlib

    return hashlib.sha256(repr(arch).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ reading
def load_stacks(synth_dir: Path) -> dict[str, dict[str, Any]]:
    files = sorted(Path(synth_dir).glob("stacks/*/cdk.tf.json"))
    if not files:
        raise SynthError(f"no stacks under {synth_dir}/stacks/ (run `make synth` first)")
    return {p.parent.name: json.loads(p.read_text()) for p in files}


def read_architecture(synth_dir: Path) -> Architecture:
    return build_architecture(load_stacks(synth_dir), _package_texts(Path(synth_dir)))


def _package_texts(synth_dir: Path) -> dict[str, str]:
    """The text files of each stack's Lambda packages (``aws_lambda_function`` name -> their contents joined): the
    orchestrator's function carries the Jobs it creates in its package, not in the state machine."""
    out: dict[str, str] = {}
    for stack in sorted(synth_dir.glob("stacks/*")):
        doc = json.loads((stack / "cdk.tf.json").read_text()) if (stack / "cdk.tf.json").is_file() else {}
        for name, body in (doc.get("resource", {}).get("aws_lambda_function") or {}).items():
            package = stack / str(body.get("filename", ""))
            if package.is_file() and zipfile.is_zipfile(package):
                with zipfile.ZipFile(package) as zf:
                    out[name] = "\n".join(zf.read(n).decode("utf-8", "replace") for n in zf.namelist()
                                          if n.endswith(".json"))
    return out


def build_architecture(stacks: dict[str, dict[str, Any]], packages: dict[str, str] | None = None) -> Architecture:
    res = _Resources(stacks)
    clusters = res.all("aws_eks_cluster")
    if not clusters:
        raise SynthError("the stacks define no aws_eks_cluster")
    cluster = clusters[0]
    fsx = _fsx(res)
    return Architecture(
        region=_region(stacks),
        network=_network(res, cluster),
        cluster=EksCluster(name=str(cluster.get("name", "")), version=str(cluster.get("version", ""))),
        node_groups=(*(_node_group(name, body) for name, body in res.named("aws_eks_node_group")),
                     *_node_pools(res)),
        fsx=fsx,
        data_bucket=_data_bucket(res),
        ecr_repository=next((str(b.get("name")) for b in res.all("aws_ecr_repository")), None),
        image_build=next((str(b.get("name")) for b in res.all("aws_codebuild_project")), None),
        releases=tuple(_release(res, b) for b in res.all("helm_release") if b.get("chart") not in NO_POD_CHARTS),
        ray=_ray_cluster(res),
        orchestrator=_orchestrator(res, packages or {}),
        container_insights=any(b.get("addon_name") == CONTAINER_INSIGHTS_ADDON for b in res.all("aws_eks_addon")),
        api_access=_api_access(res, cluster, stacks),
    )


class _Resources:
    """Every resource of every stack, by type (the ``//`` metadata left out)."""

    def __init__(self, stacks: dict[str, dict[str, Any]]) -> None:
        self.by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for doc in stacks.values():
            for rtype, byname in doc.get("resource", {}).items():
                for name, body in byname.items():
                    clean = {k: v for k, v in body.items() if k != "//"}
                    self.by_type.setdefault(rtype, []).append((name, clean))
        self.outputs = {k: v.get("value") for doc in stacks.values() for k, v in doc.get("output", {}).items()}

    def named(self, rtype: str) -> list[tuple[str, dict[str, Any]]]:
        return self.by_type.get(rtype, [])

    def all(self, rtype: str) -> list[dict[str, Any]]:
        return [body for _, body in self.named(rtype)]

    def get(self, rtype: str, name: str) -> dict[str, Any] | None:
        return next((body for n, body in self.named(rtype) if n == name), None)


def _literal(value: Any) -> str | None:
    """A plain string (no Terraform interpolation in it), else None."""
    return value if isinstance(value, str) and value and not INTERPOLATION.search(value) else None


def _region(stacks: dict[str, dict[str, Any]]) -> str | None:
    for doc in stacks.values():
        for provider in doc.get("provider", {}).get("aws", []):
            if _literal(provider.get("region")):
                return str(provider["region"])
    return None


def _network(res: _Resources, cluster: dict[str, Any]) -> Network:
    subnet_refs = list(cluster.get("vpc_config", {}).get("subnet_ids", []))
    vpcs = res.all("aws_vpc")
    if not vpcs:  # an existing VPC: its subnets are ids in the JSON, their AZs are not
        vpc_id = next((v for b in res.all("aws_security_group") if (v := _literal(b.get("vpc_id")))), None)
        vpc_id = vpc_id or _literal(res.outputs.get("vpc_id"))
        return Network(existing=True, vpc_id=vpc_id, cidr=None, private_subnets=len(subnet_refs), az_count=None,
                       az_names=(), nat_gateways=len(res.all("aws_nat_gateway")))
    zones: list[str] = []
    for ref in subnet_refs:
        m = RESOURCE_REF.match(str(ref))
        subnet = res.get(m["type"], m["name"]) if m and m["type"] == "aws_subnet" else None
        if subnet is not None and subnet.get("availability_zone") not in zones:
            zones.append(str(subnet.get("availability_zone")))
    names = tuple(z for z in zones if _literal(z))
    return Network(existing=False, vpc_id=None, cidr=_literal(vpcs[0].get("cidr_block")),
                   private_subnets=len(subnet_refs), az_count=len(zones) or None,
                   az_names=names if len(names) == len(zones) else (), nat_gateways=len(res.all("aws_nat_gateway")))


def _node_group(name: str, body: dict[str, Any]) -> NodeGroup:
    scaling = body.get("scaling_config", {})
    labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
    taints = body.get("taint") or []
    gpu = "NVIDIA" in str(body.get("ami_type", "")).upper() or any(t.get("key") == GPU_RESOURCE for t in taints)
    display = _literal(body.get("node_group_name")) or (_literal(body.get("node_group_name_prefix")) or "").rstrip("-")
    return NodeGroup(name=display or name, instance_types=tuple(body.get("instance_types") or ()),
                     min_size=int(scaling.get("min_size", 0)), max_size=int(scaling.get("max_size", 0)), gpu=gpu,
                     spot=body.get("capacity_type") == "SPOT", labels=tuple(sorted(labels.items())),
                     autoscaled=(body.get("tags") or {}).get("k8s.io/cluster-autoscaler/enabled") == "true")


def _node_pools(res: _Resources) -> list[NodeGroup]:
    """Karpenter NodePools (the ray-cluster stack's manifests) as node groups: their instance types and purchase
    options, their nodes' labels, up to the nodes of the largest type their limits hold."""
    from config.instances import lookup

    out = []
    for body in res.all("kubernetes_manifest"):
        pool = body.get("manifest", {})
        if pool.get("kind") != "NodePool":
            continue
        template = pool.get("spec", {}).get("template", {})
        spec = template.get("spec", {})
        req = {r.get("key"): tuple(r.get("values") or ()) for r in spec.get("requirements") or []}
        types = req.get("node.kubernetes.io/instance-type", ())
        limits = pool.get("spec", {}).get("limits") or {}
        known = [t for name in types if (t := lookup(name))]
        gpus = str(limits.get(GPU_RESOURCE, ""))
        most = max((t.nvidia_gpus for t in known), default=0)
        cpu, vcpus = str(limits.get("cpu", "")), max((t.vcpu for t in known), default=0)
        nodes = int(gpus) // most if gpus.isdigit() and most else int(cpu) // vcpus if cpu.isdigit() and vcpus else 0
        labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
        out.append(NodeGroup(name=str(pool.get("metadata", {}).get("name", "")), instance_types=types, min_size=0,
                             max_size=nodes, gpu=any(t.get("key") == GPU_RESOURCE for t in spec.get("taints") or []),
                             spot="spot" in req.get("karpenter.sh/capacity-type", ()),
                             labels=tuple(sorted(labels.items())), autoscaled=True, karpenter=True))
    return out


def _fsx(res: _Resources) -> Fsx | None:
    systems = res.all("aws_fsx_lustre_file_system")
    if not systems:
        return None
    repos = []
    for dra in res.all("aws_fsx_data_repository_association"):
        m = S3_PATH.match(str(dra.get("data_repository_path", "")))
        s3 = dra.get("s3") or {}
        repos.append(DataRepository(file_system_path=str(dra.get("file_system_path", "")),
                                    s3_prefix=m["prefix"] if m else "", imports="auto_import_policy" in s3,
                                    exports="auto_export_policy" in s3))
    return Fsx(deployment_type=str(systems[0].get("deployment_type", "")),
               capacity_gib=int(systems[0].get("storage_capacity", 0)),
               repositories=tuple(sorted(repos, key=lambda r: r.file_system_path)))


def _data_bucket(res: _Resources) -> str | None:
    """The bucket the FSx data repositories link: its name, or its name prefix and a ``*``."""
    for dra in res.all("aws_fsx_data_repository_association"):
        m = S3_PATH.match(str(dra.get("data_repository_path", "")))
        if not m:
            continue
        bucket = m["bucket"]
        ref = RESOURCE_REF.match(bucket)
        body = res.get("aws_s3_bucket", ref["name"]) if ref and ref["type"] == "aws_s3_bucket" else None
        if body is None:
            return _literal(bucket) or bucket
        return _literal(body.get("bucket")) or f"{body.get('bucket_prefix', ref['name'] if ref else '')}*"
    return None


def _json_values(values: Any) -> dict[str, Any]:
    """A helm_release's ``values`` (a list of JSON/YAML documents), merged at the top level; unreadable ones skipped."""
    merged: dict[str, Any] = {}
    for doc in values or []:
        try:
            parsed = json.loads(INTERPOLATION.sub("x", doc)) if isinstance(doc, str) else doc
        except ValueError:
            continue
        if isinstance(parsed, dict):
            merged.update(parsed)
    return merged


def _selector(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in value.items())) if isinstance(value, dict) else ()


def _selectors(values: Any) -> list[tuple[tuple[str, str], ...]]:
    """Every ``nodeSelector`` in a chart's values, at any depth (charts with several components set one each)."""
    if isinstance(values, list):
        return [s for v in values for s in _selectors(v)]
    if not isinstance(values, dict):
        return []
    found = [_selector(values["nodeSelector"])] if isinstance(values.get("nodeSelector"), dict) else []
    return found + [s for k, v in values.items() if k != "nodeSelector" for s in _selectors(v)]


def _namespace(res: _Resources, value: Any) -> str:
    """A namespace's name: a literal, or the stack's kubernetes_namespace(_v1) it references ("" otherwise)."""
    if literal := _literal(value):
        return literal
    m = NAMESPACE_REF.match(str(value))
    body = res.get(m["type"], m["name"]) if m else None
    return str((body.get("metadata") or {}).get("name", "")) if body else ""


def _release(res: _Resources, body: dict[str, Any]) -> HelmRelease:
    """A Helm release; its pods' nodes are the values' nodeSelector (top level, or the one most components share:
    a per-node DaemonSet such as node-exporter selects more widely)."""
    raw = body.get("values")
    values = _json_values(raw)
    top = _selector(values.get("nodeSelector"))
    counts = Counter(_selectors(values)).most_common(2)
    nested = counts[0][0] if counts and (len(counts) == 1 or counts[0][1] > counts[1][1]) else ()
    selector = top or nested
    # The KubeRay chart's single-namespace mode (singleNamespaceInstall, watchNamespace): read before the
    # interpolations are blanked out, as they name the namespaces.
    watches: tuple[str, ...] = ()
    for doc in raw or []:
        try:
            parsed = json.loads(doc) if isinstance(doc, str) else doc
        except ValueError:
            continue
        if isinstance(parsed, dict) and parsed.get("singleNamespaceInstall"):
            watches = tuple(_namespace(res, ns) for ns in parsed.get("watchNamespace") or ())
    return HelmRelease(name=str(body.get("name", "")), chart=str(body.get("chart", "")),
                       version=str(body.get("version", "")), node_selector=selector,
                       namespace=_namespace(res, body.get("namespace")), watches=watches)


def _security_group(ref: Any) -> str | None:
    """The aws_security_group a reference names (``${aws_security_group.<name>.id}``), else None."""
    m = RESOURCE_REF.match(str(ref))
    return m["name"] if m and m["type"] == "aws_security_group" else None


def _is_cluster_security_group(ref: Any) -> bool:
    # EKS puts the cluster security group on the API endpoint's network interfaces.
    return "cluster_security_group_id" in str(ref)


def _covers_https(rule: dict[str, Any]) -> bool:
    return rule.get("ip_protocol") in ("tcp", "-1") and int(rule.get("from_port", 0)) <= 443 <= int(
        rule.get("to_port", 65535))


def _api_access(res: _Resources, cluster: dict[str, Any], stacks: dict[str, dict[str, Any]]) -> ApiAccess:
    vpc = cluster.get("vpc_config") or {}
    public = tuple(str(c) for c in vpc.get("public_access_cidrs") or ()) if vpc.get("endpoint_public_access") else ()
    into_api = [r for r in res.all("aws_vpc_security_group_ingress_rule")
                if _is_cluster_security_group(r.get("security_group_id")) and _covers_https(r)]
    networks = tuple(str(r["cidr_ipv4"]) for r in into_api if _literal(r.get("cidr_ipv4")))
    # The tunnel: an instance whose security group the API's admits on 443 (no workload of ours runs on an
    # instance: every node is a node group's or Karpenter's).
    admitted = {sg for r in into_api if (sg := _security_group(r.get("referenced_security_group_id")))}
    tunnel = None
    for body in res.all("aws_instance"):
        groups = {sg for ref in body.get("vpc_security_group_ids") or () if (sg := _security_group(ref))}
        if not groups & admitted:
            continue
        inbound = sum(_security_group(r.get("security_group_id")) in groups
                      for r in res.all("aws_vpc_security_group_ingress_rule"))
        inbound += sum(bool((res.get("aws_security_group", sg) or {}).get("ingress")) for sg in groups)
        # The interface endpoints its security groups may reach (Systems Manager's, for SSM Agent).
        reached = {sg for r in res.all("aws_vpc_security_group_egress_rule")
                   if _security_group(r.get("security_group_id")) in groups
                   and (sg := _security_group(r.get("referenced_security_group_id")))}
        endpoints = sorted(str(e.get("service_name", "")).rsplit(".", 1)[-1] for e in res.all("aws_vpc_endpoint")
                           if e.get("vpc_endpoint_type") == "Interface"
                           and {_security_group(ref) for ref in e.get("security_group_ids") or ()} & reached)
        tunnel = ApiTunnel(instance_type=str(body.get("instance_type", "")), inbound_rules=inbound,
                           ssm_endpoints=tuple(endpoints), local_address=_provider_host(stacks))
        break
    return ApiAccess(public_cidrs=public, network_cidrs=networks, tunnel=tunnel)


def _provider_host(stacks: dict[str, dict[str, Any]]) -> str | None:
    """The kubernetes provider's address when it is a literal (the local end of the tunnel), else None (the
    endpoint itself, read from the infra stack's outputs)."""
    for doc in stacks.values():
        for provider in doc.get("provider", {}).get("kubernetes", []):
            if host := _literal(provider.get("host")):
                return host
    return None


def _orchestrator(res: _Resources, packages: dict[str, str]) -> Orchestrator | None:
    machines = res.all("aws_sfn_state_machine")
    if not machines:
        return None
    definition = str(machines[0].get("definition", ""))
    integrations = sorted(set(re.findall(r"arn:aws:states:::([a-z0-9-]+:[A-Za-z0-9]+)", definition)))
    invoked = set(re.findall(r"\$\{aws_lambda_function\.([a-z0-9_]+)\.arn\}", definition))
    # The Jobs' commands: in the definition (eks:runJob), or in the invoked function's package.
    commands = definition + "".join(packages.get(name, "") for name in sorted(invoked))
    services = sorted(set(re.findall(r"ray job submit --address https?://([a-z0-9.-]+):\d+", commands)))
    function = next((body for name, body in res.named("aws_lambda_function") if name in invoked), None)
    return Orchestrator(name=str(machines[0].get("name", "")), integrations=tuple(integrations),
                        submits_to=tuple(services),
                        function=str(function.get("function_name", "")) if function else None,
                        function_in_vpc=bool(function and function.get("vpc_config")))


def _ray_group(name: str, template: dict[str, Any], low: int, high: int) -> RayGroup:
    pod = template.get("spec", {})
    container = (pod.get("containers") or [{}])[0]
    limits = container.get("resources", {}).get("limits", {})
    return RayGroup(name=name, min_replicas=low, max_replicas=high, cpu=str(limits.get("cpu", "")),
                    memory=str(limits.get("memory", "")), gpus=int(limits.get(GPU_RESOURCE, 0)),
                    node_selector=_selector(pod.get("nodeSelector")))


def _image_from_ecr(image: str) -> bool:
    # The infra stack's ray_image output read through remote state: the image its CodeBuild project pushed to the
    # ECR repository (ray.image.source build); a stock or custom image is a literal reference.
    return "ecr_repository_url" in image or "outputs.ray_image" in image


def _ray_cluster(res: _Resources) -> RayCluster | None:
    manifest = next((b["manifest"] for b in res.all("kubernetes_manifest")
                     if b.get("manifest", {}).get("kind") == "RayCluster"), None)
    if manifest is None:
        return None
    spec = manifest.get("spec", {})
    head_template = spec.get("headGroupSpec", {}).get("template", {})
    head = _ray_group("head", head_template, 1, 1)
    workers = tuple(_ray_group(str(w.get("groupName", "")), w.get("template", {}), int(w.get("minReplicas", 0)),
                               int(w.get("maxReplicas", w.get("replicas", 0))))
                    for w in spec.get("workerGroupSpecs", []))
    head_container = (head_template.get("spec", {}).get("containers") or [{}])[0]
    port = next((int(p["containerPort"]) for p in head_container.get("ports", []) if p.get("name") == "dashboard"),
                DASHBOARD_PORT)
    image = str(head_container.get("image", ""))
    claims = {str(v.get("name")): str(v["persistentVolumeClaim"].get("claimName"))
              for v in head_template.get("spec", {}).get("volumes", []) if "persistentVolumeClaim" in v}
    mounts = tuple(f"{m.get('mountPath')}{' (ro)' if m.get('readOnly') else ''}"
                   for m in head_container.get("volumeMounts", []) if m.get("name") in claims)
    return RayCluster(name=str(manifest.get("metadata", {}).get("name", "")),
                      namespace=str(manifest.get("metadata", {}).get("namespace", "")), head=head, workers=workers,
                      image=image, image_from_ecr=_image_from_ecr(image), dashboard_port=port,
                      autoscaling=bool(spec.get("enableInTreeAutoscaling")),
                      fsx_claim=next(iter(claims.values()), None), fsx_mounts=mounts)
