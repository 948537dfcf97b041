"""The typed configuration of the app: one pydantic model per section.

Field rules come from ``config.types`` (validated ``Annotated`` types); rules across fields are the models'
``model_validator``s, which raise ``FieldError`` naming the field they are about. Everything the stacks build
comes from an ``AppConfig``; config flows one way: config -> stacks -> constructs.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from conventions.eks import EKS_ADDONS
from conventions.kubernetes import (
    AUTOSCALER_RESOURCES,
    CORE_ROLE,
    GPU_ROLE,
    GPU_TAINT_KEY,
    GPU_TAINT_VALUE,
    NODE_GROUP_LABEL,
    NODE_ROLE_LABEL,
    RESERVED_NODE_LABELS,
    TAINT_EFFECTS,
    cluster_autoscaler_tags,
    gpu_node_labels,
    head_service_name,
    memory_mebibytes,
    pod_requests,
)
from conventions.naming import DEPLOYMENT_TAG, IMAGE_BUILD_S3_PREFIX

from . import regions, versions
from .capacity import PodRoom, misfit, pod_room, pods_per_node, ray_head_pod_requests, ray_worker_pod_requests
from .instances import InstanceType, catalogue, gpu_families, lookup
from .types import (
    AWS_MAX_TAGS,
    CONTROL_PLANE_LOG_TYPES,
    CPU_AMI_TYPES,
    GPU_AMI_TYPES,
    PULL_THROUGH_SECRET_RE,
    AddonVersion,
    AmiType,
    AvailabilityZones,
    BrowserUrl,
    BucketName,
    ChartVersion,
    Cidr,
    CodeBuildComputeType,
    ControlPlaneLogTypes,
    CpuQuantity,
    DeploymentName,
    DnsLabel,
    EcrRepositoryName,
    EndpointUrl,
    FieldError,
    ImageRef,
    InstanceTypes,
    JobArgs,
    LabelKey,
    Labels,
    MemoryQuantity,
    MetricsScrapeMode,
    Namespace,
    NodeGroupName,
    PrincipalArns,
    PullThroughSecretArn,
    RayClusterName,
    RayVersion,
    Region,
    RetentionDays,
    S3Prefix,
    SfnLogLevel,
    SubnetIds,
    Tags,
    TaintValue,
    VpcCidr,
    VpcId,
)

# Label domains Karpenter's NodePool refuses in a template (v1.14.1 karpenter.sh_nodepools.yaml: restricted domains).
KARPENTER_LABEL_DOMAINS = ("karpenter.sh", "karpenter.k8s.aws")
# Per-unit storage throughput (MB/s/TiB) allowed per FSx for Lustre deployment type; None: not settable.
FSX_THROUGHPUT = {"SCRATCH_2": None, "PERSISTENT_1": (50, 100, 200), "PERSISTENT_2": (125, 250, 500, 1000)}
# The orchestrator adds these itself (per-execution run directory); setting them in the args is an error.
ORCHESTRATOR_MANAGED_ARGS = ("--storage-path", "--checkpoint", "--output-path")
# The user guide's ResNet18 job: `python pytorch_training_e2e.py` with these arguments.
DEFAULT_TRAINING_ARGS = ("--data-size-gb", "1", "--num-epochs", "2", "--num-workers", "1")


class _Model(BaseModel):
    # Unknown keys are typos, not extensions: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _is_open(cidr: str) -> bool:
    return ipaddress.ip_network(cidr).prefixlen == 0


# --------------------------------------------------------------------------------------------- AWS side
class BackendConfig(_Model):
    """Where Terraform state lives. ``local`` for a laptop; ``s3`` (native lock file) for teams."""

    # Where the state files are: local files under local_dir, or an S3 bucket with native locking.
    type: Literal["local", "s3"] = "local"
    # s3 only: the state bucket (yours, created beforehand).
    bucket: BucketName | None = None
    # s3 only: the prefix of the state objects' keys (<key_prefix>/<name>/<region>/<stack>.tfstate).
    key_prefix: str = "ray-eks"
    region: Region | None = None  # defaults to the deployment's region
    # s3 only: a KMS key for the state objects (default: the bucket's encryption).
    kms_key_id: str | None = None
    # local only: the directory of the state files, relative to the project root (or absolute); each deployment's
    # are in <local_dir>/<name>/<region>/.
    local_dir: str = "state"

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> BackendConfig:
        if self.type == "s3" and not self.bucket:
            raise FieldError("bucket", "required when type is s3")
        return self


class EndpointsConfig(_Model):
    """Point the AWS provider at an emulator (moto, LocalStack). Off by default."""

    # The emulator's URL for every AWS service the stacks call (tests only).
    url: EndpointUrl | None = None
    # The emulator's dummy access key.
    access_key: str = "testing"
    # The emulator's dummy secret key.
    secret_key: str = "testing"


class ExistingVpcConfig(_Model):
    """An existing VPC to deploy into instead of creating one."""

    vpc_id: VpcId
    private_subnet_ids: SubnetIds
    public_subnet_ids: SubnetIds = []

    @model_validator(mode="after")
    def _two_azs(self) -> ExistingVpcConfig:
        if len(set(self.private_subnet_ids)) < 2:
            raise FieldError("private_subnet_ids", "at least 2 subnets in different AZs are required (EKS needs 2 AZs)")
        for field in ("private_subnet_ids", "public_subnet_ids"):
            ids = getattr(self, field)
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                raise FieldError(field, f"{', '.join(twice)} is listed twice")
        return self


SMALLEST_SUBNET = 28  # AWS subnets are /16 to /28


class NetworkConfig(_Model):
    """The VPC: subnets per AZ, NAT gateways, flow logs (or an existing VPC)."""

    # The VPC's IPv4 range (/16 to /24); the subnets are carved from it.
    vpc_cidr: VpcCidr = "10.0.0.0/16"
    # Empty: the first `az_count` AZs of the region, looked up at plan time.
    availability_zones: AvailabilityZones = []
    # How many AZs when availability_zones is empty.
    az_count: int = Field(3, ge=2, le=6)
    # Empty: carved from vpc_cidr (private /19s for pods, public /24s for NAT and load balancers).
    private_subnet_cidrs: list[Cidr] = []
    # Empty: carved from vpc_cidr (see private_subnet_cidrs).
    public_subnet_cidrs: list[Cidr] = []
    # One NAT gateway per AZ survives an AZ outage; a single one is cheaper for dev.
    single_nat_gateway: bool = False
    # Days the VPC flow logs are kept in CloudWatch Logs.
    flow_log_retention_days: RetentionDays = 365
    # Deploy into this VPC and its subnets instead of creating them.
    existing: ExistingVpcConfig | None = None

    @property
    def zone_count(self) -> int:
        return len(self.availability_zones) or self.az_count

    @model_validator(mode="after")
    def _layout(self) -> NetworkConfig:
        if self.availability_zones and len(self.availability_zones) < 2:
            raise FieldError("availability_zones",
                             f"at least 2 AZs are required (EKS and FSx need 2), got {len(self.availability_zones)}")
        if self.existing is not None:  # its subnets are AWS's already; vpc_cidr and the derived layout are unused
            return self
        n = self.zone_count
        vpc = ipaddress.ip_network(self.vpc_cidr)
        for field in ("private_subnet_cidrs", "public_subnet_cidrs"):
            cidrs = getattr(self, field)
            if cidrs and len(cidrs) != n:
                raise FieldError(field, f"needs one CIDR per AZ ({n}), got {len(cidrs)}")
            for c in cidrs:
                net = ipaddress.ip_network(c)
                if not net.subnet_of(vpc):  # type: ignore[arg-type]
                    raise FieldError(field, f"{c} is not inside vpc_cidr {self.vpc_cidr}")
                if net.prefixlen > SMALLEST_SUBNET:
                    raise FieldError(field, f"{c} is smaller than AWS's smallest subnet, a /{SMALLEST_SUBNET}")
        public = [ipaddress.ip_network(c) for c in self.public_cidrs()]
        if not self.public_subnet_cidrs and public[0].prefixlen > SMALLEST_SUBNET:
            raise FieldError("vpc_cidr", f"the public subnets derived from a /{vpc.prefixlen} would be "
                                         f"/{public[0].prefixlen}, smaller than AWS's smallest subnet "
                                         f"(/{SMALLEST_SUBNET}): use a larger VPC, or set public_subnet_cidrs")
        # Given and derived alike: what the stacks will create must not overlap.
        subnets = ([("private_subnet_cidrs", ipaddress.ip_network(c)) for c in self.private_cidrs()]
                   + [("public_subnet_cidrs", p) for p in public])
        for i, (fa, a) in enumerate(subnets):
            for fb, b in subnets[i + 1:]:
                if a.overlaps(b):
                    given = fb if getattr(self, fb) else fa
                    raise FieldError(given, f"{b} overlaps {a} ({fa}{'' if getattr(self, fa) else ', derived'}); "
                                            f"subnet CIDRs must not overlap")
        return self

    def private_cidrs(self) -> list[str]:
        if self.private_subnet_cidrs:
            return list(self.private_subnet_cidrs)
        vpc = ipaddress.ip_network(self.vpc_cidr)
        return [str(s) for s in list(vpc.subnets(prefixlen_diff=3))[: self.zone_count]]

    def public_cidrs(self) -> list[str]:
        if self.public_subnet_cidrs:
            return list(self.public_subnet_cidrs)
        vpc = ipaddress.ip_network(self.vpc_cidr)
        # The last eighth of the VPC, split into /24-equivalents: never overlaps the private eighths above.
        *_, last_eighth = vpc.subnets(prefixlen_diff=3)
        return [str(s) for s in list(last_eighth.subnets(prefixlen_diff=5))[: self.zone_count]]


# EKS's CreateNodegroup (botocore eks labelKey, labelValue, taintKey): 1-63 characters, prefix included.
EKS_LABEL_MAX = 63
# kubelet refuses --node-labels in these namespaces (its own and the node controller's are the exceptions).
KUBELET_RESTRICTED = ("kubernetes.io", "k8s.io")
KUBELET_ALLOWED = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _kubelet_refuses(key: str) -> bool:
    prefix = key.rpartition("/")[0]
    def under(p: str, domains: tuple[str, ...]) -> bool:
        return any(p == d or p.endswith("." + d) for d in domains)
    return bool(prefix) and under(prefix, KUBELET_RESTRICTED) and not under(prefix, KUBELET_ALLOWED)


class Taint(_Model):
    key: LabelKey
    value: TaintValue = ""
    effect: Literal["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"] = "NO_SCHEDULE"

    @model_validator(mode="after")
    def _eks_limits(self) -> Taint:
        if len(self.key) > EKS_LABEL_MAX:
            raise FieldError("key", f"EKS allows taint keys of at most {EKS_LABEL_MAX} characters, got "
                                    f"{len(self.key)}")
        return self

    @property
    def repels(self) -> bool:
        """Pods that do not tolerate it never land (PreferNoSchedule only discourages)."""
        return self.effect != "PREFER_NO_SCHEDULE"

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{TAINT_EFFECTS[self.effect]}"


def _architecture(ami_type: str) -> str:
    return "arm64" if "ARM_64" in ami_type else "x86_64"


def _shape(t: InstanceType) -> tuple:
    return (t.vcpu, t.memory_mib, t.nvidia_gpus, t.gpu_model)


class NodeGroupConfig(_Model):
    """One EKS managed node group (its name becomes part of resource addresses: keep it stable)."""

    # The group's name (part of its resource addresses and of its AWS names).
    name: NodeGroupName
    role: Literal["core", "gpu", "cpu"] = Field(
        "cpu", description="core: system + Ray head; gpu: GPU workers; cpu: CPU workers")
    # EC2 instance types of config/instance_types.yaml, all of one shape (vCPUs, memory, GPUs).
    instance_types: InstanceTypes = Field(min_length=1)
    # The EKS AMI type. Empty: AL2023 for the instance types' architecture, its NVIDIA variant for a gpu group (as
    # pulumi-eks derives it); one given is checked against the role and the architecture.
    ami_type: AmiType | None = None
    # On-Demand or Spot instances; SPOT_OR_ON_DEMAND (Karpenter pools only): Spot, On-Demand when Spot has none.
    capacity_type: Literal["ON_DEMAND", "SPOT", "SPOT_OR_ON_DEMAND"] = "ON_DEMAND"
    # Nodes the group never goes below (0: scale from zero). Managed node groups only: a Karpenter pool has no
    # minimum (keep workers warm with ray.worker_groups[].min_replicas).
    min_size: int = Field(1, ge=0, le=1000)
    # Nodes at creation; afterwards cluster-autoscaler owns the number (managed node groups only).
    desired_size: int = Field(1, ge=0, le=1000)
    # Nodes the group never goes above (a Karpenter pool: its limits hold this many nodes of its largest type).
    max_size: int = Field(3, ge=1, le=1000)
    # Root volume size of each node (images and Ray's spill space).
    disk_size_gib: int = Field(100, ge=20, le=16384)
    # Extra Kubernetes node labels (the role, node-group and GPU labels are set by the platform).
    labels: Labels = {}
    # Extra Kubernetes node taints (gpu groups get the NVIDIA taint anyway).
    taints: list[Taint] = []

    @model_validator(mode="after")
    def _consistent(self) -> NodeGroupConfig:
        if self.min_size > self.max_size:
            raise FieldError("min_size", f"{self.min_size} is greater than max_size {self.max_size}")
        if not self.min_size <= self.desired_size <= self.max_size:
            raise FieldError("desired_size", f"must be between min_size {self.min_size} and max_size {self.max_size}, "
                                             f"got {self.desired_size}")
        types = self.instance_type_specs
        if self.role == GPU_ROLE:
            bad = sorted({t.family for t in types if not t.nvidia_gpus})
            if bad:
                raise FieldError("instance_types", f"a gpu group needs NVIDIA GPU instance families "
                                                   f"({', '.join(gpu_families())}), got {', '.join(bad)}")
            if self.ami_type is not None and self.ami_type not in GPU_AMI_TYPES:
                raise FieldError("ami_type", f"a gpu group needs an NVIDIA AMI ({', '.join(GPU_AMI_TYPES)}), "
                                             f"got {self.ami_type}; or leave it out (derived: {self.eks_ami_type})")
            # The node labels name one accelerator per group (the first type's): types of one GPU model only.
            models = sorted({t.gpu_model or "" for t in types})
            if len(models) > 1:
                raise FieldError("instance_types", f"a gpu group's types have one GPU model (its nodes are labelled "
                                                   f"with it), got {', '.join(models)}: use a group per model")
        elif self.ami_type in GPU_AMI_TYPES:
            raise FieldError("ami_type", f"{self.ami_type} is for gpu groups; a {self.role} group uses one of "
                                         f"{', '.join(CPU_AMI_TYPES)}")
        archs = sorted({t.architecture for t in types})
        if len(archs) > 1:
            raise FieldError("instance_types", f"mixes architectures ({', '.join(archs)}); one AMI runs one")
        arch = _architecture(self.eks_ami_type)
        wrong = [t.name for t in types if t.architecture != arch]
        if wrong:
            raise FieldError("instance_types", f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not {arch}, "
                                               f"the architecture of ami_type {self.eks_ami_type}")
        reserved = sorted(k for k in self.labels if k in RESERVED_NODE_LABELS)
        if reserved:
            raise FieldError("labels", f"{', '.join(reserved)} is set by the platform (from name, role and "
                                       f"instance types); remove it")
        for k, v in self.labels.items():
            if len(k) > EKS_LABEL_MAX or not v:
                raise FieldError("labels", f"{k}={v!r}: EKS takes label keys and values of 1-{EKS_LABEL_MAX} "
                                           f"characters (the key's prefix counts)")
            if _kubelet_refuses(k):
                raise FieldError("labels", f"{k}: kubelet sets or refuses node labels under kubernetes.io and "
                                           f"k8s.io (only node.kubernetes.io/ and kubelet.kubernetes.io/ are yours); "
                                           f"use your own prefix such as example.com/")
        seen: set[tuple[str, str]] = set()
        for taint in self.taints:
            if (taint.key, taint.effect) in seen:
                raise FieldError("taints", f"{taint.key} with effect {taint.effect} appears twice; Kubernetes allows "
                                           f"one taint per key and effect")
            seen.add((taint.key, taint.effect))
        if self.role == GPU_ROLE:
            # The GPU workers tolerate it with effect NoSchedule (conventions/kubernetes.py gpu_toleration): with
            # another effect they would never land, or be evicted.
            wrong = [str(x) for x in self.taints if x.key == GPU_TAINT_KEY and x.effect != "NO_SCHEDULE"]
            if wrong:
                raise FieldError("taints", f"{', '.join(wrong)}: a gpu group's {GPU_TAINT_KEY} taint must have effect "
                                           f"NO_SCHEDULE (what the Ray GPU workers tolerate)")
        return self

    def shape_problem(self) -> str | None:
        """Why cluster-autoscaler cannot size this group (None: it can). It builds a group's scale-from-zero node
        from the group's first instance type, and its AWS README asks for the same CPUs and memory across a group's
        types; Karpenter chooses among differently sized types itself."""
        types = self.instance_type_specs
        first = types[0]
        for t in types[1:]:
            if _shape(t) != _shape(first):
                alike = [n for n, o in catalogue().items() if _shape(o) == _shape(first)
                         and o.architecture == first.architecture and n != first.name][:6]
                hint = f"; types shaped like {first.name}: {', '.join(alike)}" if alike else ""
                return (f"{t.name} ({t.describe}) differs from {first.name} ({first.describe}): "
                        f"cluster-autoscaler sizes the group from its first type, so every type needs the "
                        f"same vCPUs, memory and GPUs{hint}")
        return None

    def pool_limits(self, max_size: int | None = None) -> dict[str, int]:
        """What the group may hold in all: max_size nodes of its largest type's vCPUs, memory (MiB) and NVIDIA GPUs (a
        Karpenter pool's spec.limits; Karpenter counts its nodes' capacity against them)."""
        types, size = self.instance_type_specs, self.max_size if max_size is None else max_size
        return {"cpu": size * max(t.vcpu for t in types), "memory_mib": size * max(t.memory_mib for t in types),
                "gpus": size * max(t.nvidia_gpus for t in types)}

    def max_nodes(self, t: InstanceType, max_size: int | None = None) -> int:
        """The most nodes of type ``t`` the group reaches within pool_limits (for a managed group, whose types share
        one shape: max_size)."""
        limits = self.pool_limits(max_size)
        caps = [(limits["cpu"], t.vcpu), (limits["memory_mib"], t.memory_mib), (limits["gpus"], t.nvidia_gpus)]
        return min(total // each for total, each in caps if each)

    @property
    def eks_ami_type(self) -> str:
        """ami_type, or the one derived from role and architecture: AL2023, NVIDIA for a gpu group."""
        if self.ami_type:
            return self.ami_type
        arch = "ARM_64" if self.instance_type_specs[0].architecture == "arm64" else "x86_64"
        return f"AL2023_{arch}_{'NVIDIA' if self.role == GPU_ROLE else 'STANDARD'}"

    @property
    def instance_type_specs(self) -> list[InstanceType]:
        """The catalogue's entries for instance_types (validated to exist)."""
        return [lookup(t) for t in self.instance_types]  # type: ignore[misc]

    @property
    def kubernetes_labels(self) -> dict[str, str]:
        labels: dict[str, str] = {NODE_ROLE_LABEL: self.role, NODE_GROUP_LABEL: self.name}
        if self.role == GPU_ROLE:
            # One GPU model per group (validated): the first type's accelerator.
            labels.update(gpu_node_labels(self.instance_type_specs[0].accelerator_label or ""))
        return {**labels, **self.labels}

    @property
    def kubernetes_taints(self) -> list[Taint]:
        if self.role == GPU_ROLE and not any(t.key == GPU_TAINT_KEY for t in self.taints):
            return [Taint(key=GPU_TAINT_KEY, value=GPU_TAINT_VALUE, effect="NO_SCHEDULE"), *self.taints]
        return list(self.taints)


def _default_node_groups() -> list[NodeGroupConfig]:
    return [
        NodeGroupConfig(name="core", role="core", instance_types=["m6i.2xlarge"], min_size=2, desired_size=2,
                        max_size=4, disk_size_gib=100),
        NodeGroupConfig(name="gpu", role="gpu", instance_types=["g5.xlarge"], min_size=0, desired_size=0,
                        max_size=4, disk_size_gib=200),
    ]


# Networks that are never a deployer's address on the internet: RFC 1918 private, RFC 6598 shared (carrier NAT),
# RFC 5737 documentation, loopback and link-local. A public endpoint limited to one of them admits nobody.
NOT_INTERNET_RANGES = {
    "private (RFC 1918)": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
    "shared carrier-NAT (RFC 6598)": ("100.64.0.0/10",),
    "documentation (RFC 5737)": ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"),
    "loopback": ("127.0.0.0/8",),
    "link-local": ("169.254.0.0/16",),
}


def _not_internet(cidr: str) -> str | None:
    """The kind of non-internet range ``cidr`` lies in, if it does."""
    net = ipaddress.IPv4Network(cidr)
    for kind, ranges in NOT_INTERNET_RANGES.items():
        if any(net.subnet_of(ipaddress.IPv4Network(r)) for r in ranges):
            return kind
    return None


ENDPOINT_ACCESS_MODES = ("tunnel", "public", "private")


class ClusterConfig(_Model):
    """The EKS cluster: version, API access, admins, add-ons, control-plane logs, node groups."""

    # The Kubernetes minor version of the control plane and the node groups (EKS upgrades one minor at a time).
    kubernetes_version: Literal[versions.SUPPORTED_KUBERNETES_VERSIONS] = versions.DEFAULT_KUBERNETES_VERSION  # type: ignore[valid-type]
    # How the deployer (the ray stacks' providers, kubectl, the make targets) reaches the Kubernetes API.
    # tunnel: the endpoint stays private; the infra stack adds a small SSM-managed instance and `make tunnel`
    # forwards https://127.0.0.1:<tunnel_local_port> to the endpoint (needs only the AWS CLI and its Session
    # Manager plugin). public: a public endpoint limited to public_access_cidrs. private: the endpoint stays
    # private and private_access_cidrs (your VPN, peering or Direct Connect networks) may reach it on 443.
    endpoint_access: Literal[ENDPOINT_ACCESS_MODES] = "tunnel"  # type: ignore[valid-type]
    # endpoint_access public only: the internet CIDRs allowed to reach the public endpoint (your egress addresses).
    public_access_cidrs: list[Cidr] = []
    # endpoint_access private only: the networks that reach the VPC (VPN, peering, Direct Connect) and may call
    # the private endpoint on 443.
    private_access_cidrs: list[Cidr] = []
    # endpoint_access tunnel only: the local port `make tunnel` listens on (127.0.0.1).
    tunnel_local_port: int = Field(8443, ge=1024, le=65535)
    # IAM roles/users granted cluster admin through EKS access entries (API authentication mode).
    admin_principal_arns: PrincipalArns = []
    # The identity running the infra apply gets an admin access entry too (the role behind an assumed-role
    # session), so the ray stack can install into the cluster. Terraform manages it like the listed ones: a
    # later apply by another principal moves the entry to that principal; false removes it.
    creator_is_admin: bool = True
    # EKS add-on versions to pin (add-on name -> version); an add-on not listed gets the newest version for
    # kubernetes_version, resolved at plan time (data.aws_eks_addon_version).
    addon_versions: dict[str, AddonVersion] = {}
    # Control-plane log types sent to CloudWatch Logs.
    log_types: ControlPlaneLogTypes = list(CONTROL_PLANE_LOG_TYPES)
    # Days the control-plane (and other) logs are kept.
    log_retention_days: RetentionDays = 365
    # The node groups: exactly one core group, and gpu/cpu groups for the workers.
    node_groups: list[NodeGroupConfig] = Field(default_factory=_default_node_groups)
    # What adds worker nodes for pending pods. cluster-autoscaler: every node group is an EKS managed node group it
    # scales. karpenter: the core group stays a managed node group (it runs Karpenter and the Ray head) and each
    # gpu/cpu group becomes a Karpenter NodePool, which launches instances of any of the group's types, sizes and
    # (SPOT_OR_ON_DEMAND) purchase options as pods need them (docs/ray-cluster.md "Node autoscaling").
    autoscaler: Literal["cluster-autoscaler", "karpenter"] = "cluster-autoscaler"

    # AmazonSSMManagedInstanceCore on the node roles: Session Manager shells on the nodes. Off by default: whoever
    # may ssm:StartSession on an instance is root on that node, outside the cluster's access entries.
    node_ssm_access: bool = False

    @model_validator(mode="after")
    def _endpoint_access(self) -> ClusterConfig:
        mode = self.endpoint_access
        for field, used_by in (("public_access_cidrs", "public"), ("private_access_cidrs", "private")):
            if getattr(self, field) and mode != used_by:
                raise FieldError(field, f"only used with endpoint_access: {used_by} (endpoint_access is {mode}); "
                                        f"remove it or set endpoint_access: {used_by}")
        if mode == "public":
            if not self.public_access_cidrs:
                raise FieldError("public_access_cidrs", "endpoint_access public needs the internet CIDRs allowed to "
                                                        "reach the API (your egress address, e.g. its /32)")
            for c in self.public_access_cidrs:
                kind = _not_internet(c)
                if kind:
                    raise FieldError("public_access_cidrs",
                                     f"{c} is a {kind} range, never an address on the internet: the public endpoint "
                                     f"would admit nobody; give your egress address (or use endpoint_access: private "
                                     f"with private_access_cidrs for VPN networks)")
        if mode == "private":
            if not self.private_access_cidrs:
                raise FieldError("private_access_cidrs", "endpoint_access private needs the networks that reach the "
                                                         "VPC (VPN, peering, Direct Connect); without them only the "
                                                         "cluster itself reaches the API (use endpoint_access: tunnel)")
            opened = [c for c in self.private_access_cidrs if _is_open(c)]
            if opened:
                raise FieldError("private_access_cidrs", "0.0.0.0/0 is not a private network (use endpoint_access: "
                                                         "public with your egress CIDRs)")
        return self

    @model_validator(mode="after")
    def _groups(self) -> ClusterConfig:
        names = [g.name for g in self.node_groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FieldError("node_groups", f"names must be unique, {', '.join(dupes)} repeats")
        if sum(g.role == CORE_ROLE for g in self.node_groups) != 1:
            raise FieldError("node_groups",
                             "exactly one group must have role core (system pods and the Ray head run there)")
        for i, g in enumerate(self.node_groups):
            if self.is_karpenter_pool(g):
                self._karpenter_pool(i, g)
                continue
            problem = g.shape_problem()
            if problem:
                raise FieldError(("node_groups", i, "instance_types"), problem)
            if g.capacity_type == "SPOT_OR_ON_DEMAND":
                why = ("the core group stays a managed node group" if self.autoscaler == "karpenter"
                       else "with cluster.autoscaler: karpenter")
                raise FieldError(("node_groups", i, "capacity_type"),
                                 f"SPOT_OR_ON_DEMAND (Spot, falling back to On-Demand) is for Karpenter pools "
                                 f"({why}); EKS managed node groups take ON_DEMAND or SPOT")
        unknown = sorted(set(self.addon_versions) - set(EKS_ADDONS))
        if unknown:
            raise FieldError("addon_versions", f"{', '.join(unknown)} is not an add-on of the cluster "
                                               f"(have {', '.join(EKS_ADDONS)})")
        i, core = next((i, g) for i, g in enumerate(self.node_groups) if g.role == CORE_ROLE)
        repelling = [str(t) for t in core.taints if t.repels]
        if repelling:
            raise FieldError(("node_groups", i, "taints"), f"the core group runs system pods and the Ray head, which "
                                                          f"tolerate no taints; remove {', '.join(repelling)}")
        return self

    def _karpenter_pool(self, i: int, g: NodeGroupConfig) -> None:
        # A NodePool has no minimum or desired size: say so rather than ignore a number someone chose.
        for field in ("min_size", "desired_size"):
            if field in g.model_fields_set and getattr(g, field):
                raise FieldError(("node_groups", i, field),
                                 f"a Karpenter pool (cluster.autoscaler: karpenter) has no {field}: Karpenter adds "
                                 f"nodes for pending pods and removes empty ones; keep Ray workers (and their "
                                 f"nodes) warm with ray.worker_groups[].min_replicas, or remove {field}")
        restricted = sorted(k for k in g.labels if k.partition("/")[0].endswith(KARPENTER_LABEL_DOMAINS))
        if restricted:
            raise FieldError(("node_groups", i, "labels"),
                             f"{', '.join(restricted)}: Karpenter keeps the {' and '.join(KARPENTER_LABEL_DOMAINS)} "
                             f"label domains to itself (its NodePool CRD refuses them); use your own prefix")
        if not g.eks_ami_type.startswith("AL2023_"):
            raise FieldError(("node_groups", i, "ami_type"),
                             f"Karpenter pools run AL2023 (the EC2NodeClass alias al2023@"
                             f"{versions.KARPENTER_AMI_RELEASE}), got {g.eks_ami_type}; leave ami_type out")

    def is_karpenter_pool(self, group: NodeGroupConfig) -> bool:
        """The group becomes a Karpenter NodePool (not an EKS managed node group)."""
        return self.autoscaler == "karpenter" and group.role != CORE_ROLE

    @property
    def managed_node_groups(self) -> list[NodeGroupConfig]:
        """The groups that are EKS managed node groups: all of them with cluster-autoscaler, core with Karpenter."""
        return [g for g in self.node_groups if not self.is_karpenter_pool(g)]

    @property
    def karpenter_pools(self) -> list[NodeGroupConfig]:
        """The groups that become Karpenter NodePools (none with cluster-autoscaler)."""
        return [g for g in self.node_groups if self.is_karpenter_pool(g)]

    @property
    def core_group(self) -> NodeGroupConfig:
        return next(g for g in self.node_groups if g.role == CORE_ROLE)

    @property
    def has_gpu(self) -> bool:
        return any(g.role == GPU_ROLE for g in self.node_groups)


class FsxConfig(_Model):
    """FSx for Lustre: the shared file system the Ray pods mount at /ray/export and /ray/import."""

    # FSx for Lustre deployment type (SCRATCH_2 for throwaway data).
    deployment_type: Literal["SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2"] = "PERSISTENT_2"
    # 1200 or a multiple of 2400 GiB.
    storage_capacity_gib: int = 1200
    per_unit_storage_throughput: int | None = None  # MB/s/TiB; default: the smallest allowed
    # Link /import and /export to the data bucket's prefixes below (data repository associations, as in the
    # original deployment). FSx cannot back up a linked file system: its durable copy is what auto-export
    # writes to the versioned bucket. false: a file system of its own, which a PERSISTENT type can back up.
    data_repository: bool = True
    # S3 prefixes of the data bucket linked to the file system (as in the original deployment).
    import_prefix: S3Prefix = "ray/import/"
    # Where FSx exports /ray/export (checkpoints, results) in the data bucket.
    export_prefix: S3Prefix = "ray/export/"
    # Daily automatic backups kept this many days (0: none), and a backup when the file system is deleted.
    # Only for a PERSISTENT type with data_repository: false (FSx backs up no other Lustre file system).
    backup_retention_days: int = Field(0, ge=0, le=90)
    # A backup when the file system is deleted (PERSISTENT, not linked to S3).
    final_backup: bool = False

    @model_validator(mode="after")
    def _capacity(self) -> FsxConfig:
        c = self.storage_capacity_gib
        if not (c == 1200 or (c > 0 and c % 2400 == 0)):
            raise FieldError("storage_capacity_gib",
                             f"{self.deployment_type} allows 1200 or a multiple of 2400 GiB, got {c}")
        allowed = FSX_THROUGHPUT[self.deployment_type]
        t = self.per_unit_storage_throughput
        if allowed is None and t is not None:
            raise FieldError("per_unit_storage_throughput", f"not settable for {self.deployment_type}; remove it")
        if allowed is not None and t is not None and t not in allowed:
            raise FieldError("per_unit_storage_throughput",
                             f"{self.deployment_type} allows {', '.join(map(str, allowed))}, got {t}")
        if self.import_prefix.startswith(self.export_prefix) or self.export_prefix.startswith(self.import_prefix):
            raise FieldError("export_prefix", "must not overlap import_prefix")
        for field in ("backup_retention_days", "final_backup"):
            if getattr(self, field) and not self.backups_possible:
                why = (f"{self.deployment_type} is not" if not self.is_persistent else
                       "this one is linked to the data bucket (data_repository: true), whose versioned auto-export "
                       "copy is the durable one; set data_repository: false for Lustre backups")
                raise FieldError(field, f"FSx backs up only PERSISTENT file systems not linked to S3: {why}")
        return self

    @property
    def backups_possible(self) -> bool:
        """FSx backs up only persistent Lustre file systems that are not linked to a data repository."""
        return self.is_persistent and not self.data_repository

    @property
    def has_durable_copy(self) -> bool:
        return self.data_repository or self.backup_retention_days > 0 or self.final_backup

    @property
    def throughput(self) -> int | None:
        allowed = FSX_THROUGHPUT[self.deployment_type]
        return self.per_unit_storage_throughput or (allowed[0] if allowed else None)

    @property
    def is_persistent(self) -> bool:
        return self.deployment_type.startswith("PERSISTENT")


class EcrConfig(_Model):
    """The ECR repository of the Ray image."""

    # None: <name>/ray-custom (conventions/naming.py), so deployments in one region never share a repository.
    repository_name: EcrRepositoryName | None = None
    # Images the lifecycle policy keeps; older ones expire.
    keep_last_images: int = Field(30, ge=1, le=1000)


class ProtectionConfig(_Model):
    """Guards on stateful resources. Turn off only for throwaway environments."""

    # FSx, the data bucket and the ECR repository get lifecycle.prevent_destroy and no force-delete.
    prevent_destroy: bool = True


# --------------------------------------------------------------------------------------------- Ray side
class WorkerGroupConfig(_Model):
    """One autoscaling group of Ray workers, on one node group."""

    # The worker group's name in the RayCluster.
    name: DnsLabel
    node_group: str  # which node group (by name) the workers run on
    # Workers the Ray autoscaler keeps running.
    min_replicas: int = Field(0, ge=0, le=1000)
    # Workers the Ray autoscaler may run.
    max_replicas: int = Field(4, ge=1, le=1000)
    # CPU request = limit of each worker pod (Ray's num-cpus).
    cpu: CpuQuantity = "3"
    # Memory request = limit of each worker pod; half of it is the object store's /dev/shm.
    memory: MemoryQuantity = "12Gi"
    # NVIDIA GPUs per worker (0 on a cpu group).
    gpus: int = Field(1, ge=0, le=8)

    @model_validator(mode="after")
    def _range(self) -> WorkerGroupConfig:
        if self.min_replicas > self.max_replicas:
            raise FieldError("min_replicas", f"{self.min_replicas} is greater than max_replicas {self.max_replicas}")
        return self


# The head's memory for the number of Ray workers it may have to serve (GCS tables, the dashboard's caches and
# event history, the autoscaler grow with the nodes: ray-project/ray#48723, kuberay#4287): our rule of thumb,
# topped by Ray's large-cluster guidance ("a good starting hardware specification for the head node is 8 CPUs and
# 32 GB memory", Ray 2.58 docs, cluster/vms/user-guides/large-cluster-best-practices, "Configuring the head node").
# (up to this many workers, at least this much memory, MiB); docs/observability.md "Head sizing".
HEAD_MEMORY_FOR_WORKERS = ((16, 4096), (64, 8192), (256, 16384), (None, 32768))


def head_memory_needed(workers: int) -> int:
    """MiB the head needs for up to ``workers`` Ray workers (HEAD_MEMORY_FOR_WORKERS)."""
    return next(mib for most, mib in HEAD_MEMORY_FOR_WORKERS if most is None or workers <= most)


class HeadConfig(_Model):
    """The Ray head pod (on the core group; it runs no Ray work)."""

    # CPU request = limit of the head container.
    cpu: CpuQuantity = "2"
    # Memory request = limit of the head container (GCS and the dashboard live here).
    memory: MemoryQuantity = "8Gi"

    @model_validator(mode="after")
    def _memory(self) -> HeadConfig:
        if memory_mebibytes(self.memory) < 4096:
            raise FieldError("memory", f"must be at least 4Gi (smaller Ray heads run out of memory), got {self.memory}")
        return self


def _default_worker_groups() -> list[WorkerGroupConfig]:
    return [WorkerGroupConfig(name="gpu-group", node_group="gpu", min_replicas=0, max_replicas=4, cpu="3",
                              memory="12Gi", gpus=1)]


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


IMAGE_SOURCES = ("build", "stock", "custom")


class RayImageConfig(_Model):
    """The image of the Ray head and workers (and of the job submitters).

    build: the deploy builds training/Dockerfile (Ray + training/requirements.txt + the job code) in AWS CodeBuild
    and pushes it to the ECR repository with an immutable content-hash tag. stock: rayproject/ray, which has no
    torch. custom: ``uri``, your own image. With stock and custom, every job submission installs
    training/requirements.txt through its runtime_env (pip), on every node, before the job starts.
    """

    # build: the deploy builds training/Dockerfile; stock: rayproject/ray; custom: uri.
    source: Literal[IMAGE_SOURCES] = "build"  # type: ignore[valid-type]
    uri: ImageRef | None = None  # custom only
    # build only: a Secrets Manager secret named ecr-pullthroughcache/... (keys username, accessToken) with Docker Hub
    # credentials. The build then pulls rayproject/ray through an ECR pull-through cache: Docker Hub's anonymous
    # pull limit counts per address, and CodeBuild's addresses are shared.
    docker_hub_secret_arn: PullThroughSecretArn | None = None
    build_compute_type: CodeBuildComputeType = "BUILD_GENERAL1_LARGE"  # 15 GB RAM, 128 GB disk: a CUDA image fits
    # The CodeBuild build's timeout.
    build_timeout_minutes: int = Field(120, ge=5, le=2160)

    @model_validator(mode="after")
    def _source(self) -> RayImageConfig:
        if self.source == "custom" and not self.uri:
            raise FieldError("uri", "required when source is custom (the image of the Ray head and workers)")
        if self.source != "custom" and self.uri:
            raise FieldError("uri", f"only used when source is custom; remove it or set source: custom "
                                    f"(source is {self.source})")
        if self.source != "build" and self.docker_hub_secret_arn:
            raise FieldError("docker_hub_secret_arn", f"only used when source is build (source is {self.source})")
        return self

    @property
    def bundles_job_requirements(self) -> bool:
        """The image itself holds training/requirements.txt: no runtime_env install per job."""
        return self.source == "build"


class RayConfig(_Model):
    """The Ray cluster: namespace, version, image, head, worker groups, the charts of the Ray platform."""

    # The namespace of the Ray pods and the jobs.
    namespace: Namespace = "ray"
    # The KubeRay operator's own namespace: it watches only ray.namespace, with a Role there (nothing cluster-wide),
    # and no Ray code can run as its ServiceAccount.
    operator_namespace: Namespace = "kuberay-system"
    # The RayCluster name; KubeRay names the head service "<name>-head-svc" (the user guide uses kuberay-head-svc).
    cluster_name: RayClusterName = "kuberay"
    # Ray's version: the image's and the RayCluster's (token auth needs 2.52 or later).
    ray_version: RayVersion = versions.RAY_VERSION
    image: RayImageConfig = RayImageConfig()
    # Seconds a worker is idle before the Ray autoscaler removes it.
    idle_timeout_seconds: int = Field(60, ge=0, le=86400)
    # Seconds a worker pod, told to stop (its node drained, a Spot reclaim, scale-down), lets Ray drain before its
    # processes are killed: Ray 2.58's `ray start --block` marks the node draining on SIGTERM for up to this long
    # (RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S); the pod's termination grace period is this plus 30 s for Ray's own
    # shutdown. 0: no drain. Spot gives two minutes' notice. With Karpenter, each NodePool's terminationGracePeriod
    # is that grace period too: a node deleted anyway (Spot, node repair) drains its workers at once, then goes.
    worker_drain_seconds: int = Field(60, ge=0, le=3600)
    # What KubeRay does when the RayCluster's pod templates change (a new image, resources, env): Recreate deletes
    # every Ray pod and starts them anew, so the change takes effect and RUNNING JOBS STOP; None keeps the running
    # pods (new workers get the new template, the head never does). docs/ray-cluster.md weighs the two.
    upgrade_strategy: Literal["Recreate", "None"] = "Recreate"
    # The head pod's resources.
    head: HeadConfig = HeadConfig()
    # The worker groups (each on one node group).
    worker_groups: list[WorkerGroupConfig] = Field(default_factory=_default_worker_groups)
    # Node autoscaling for pending Ray pods.
    cluster_autoscaler_chart_version: ChartVersion = versions.CLUSTER_AUTOSCALER_CHART
    # NVIDIA device plugin chart version (gpu groups only).
    nvidia_device_plugin_chart_version: ChartVersion = versions.NVIDIA_DEVICE_PLUGIN_CHART
    # KubeRay operator chart version.
    kuberay_operator_chart_version: ChartVersion = versions.KUBERAY_OPERATOR_CHART

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: object) -> object:
        # The image settings before ray.image became a section: say what replaces them, not just "unknown key".
        if isinstance(data, dict):
            if "use_ecr_image" in data:
                raise FieldError("use_ecr_image", "replaced by ray.image.source: build (the default: the deploy "
                                                  "builds the image and the cluster uses it)")
            if isinstance(data.get("image"), str):
                raise FieldError("image", "is a section now: write image: {source: custom, uri: "
                                          f"{data['image']}}} (or source: build / stock)")
        return data

    @model_validator(mode="after")
    def _groups(self) -> RayConfig:
        if _version(self.ray_version) < _version(versions.RAY_TOKEN_AUTH_MIN_VERSION):
            raise FieldError("ray_version", f"the RayCluster's job API requires a token (KubeRay authOptions), which "
                                            f"needs Ray {versions.RAY_TOKEN_AUTH_MIN_VERSION} or later, got "
                                            f"{self.ray_version}")
        names = [g.name for g in self.worker_groups]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise FieldError(("worker_groups", i, "name"),
                                 f"{name!r} is also worker_groups[{names.index(name)}]'s name; worker group names "
                                 f"must be unique (KubeRay names the pods and the autoscaler scales by it)")
        workers = sum(g.max_replicas for g in self.worker_groups)
        need = head_memory_needed(workers)
        if memory_mebibytes(self.head.memory) < need:
            raise FieldError(("head", "memory"), f"{self.head.memory} is too small a Ray head for up to {workers} "
                                                 f"workers (the sum of worker_groups[].max_replicas): give it at "
                                                 f"least {need // 1024}Gi (GCS and the dashboard grow with the "
                                                 f"cluster; docs/observability.md#head-sizing)")
        return self

    @property
    def head_service(self) -> str:
        return head_service_name(self.cluster_name)


class TrainingConfig(_Model):
    """The user guide's training job (training/pytorch_training_e2e.py): `make submit`, the stack outputs' submit
    command, the rendered in-cluster Job and RayJob, and the orchestrator's training step run it with these."""

    # The arguments of `python pytorch_training_e2e.py`.
    args: JobArgs = list(DEFAULT_TRAINING_ARGS)


# ---------------------------------------------------------------------------------------- orchestration, observability
def _no_managed_args(values: list[str]) -> str | None:
    return next((a for a in values if a.split("=", 1)[0] in ORCHESTRATOR_MANAGED_ARGS), None)


class OrchestratorConfig(_Model):
    """Step Functions pipeline: a training Job, then a batch-inference Job, on the running RayCluster."""

    # None: on when the cluster has a GPU node group (the GPU profile), off otherwise.
    enabled: bool | None = None
    # None: the training job's arguments (training.args).
    training_args: JobArgs | None = None
    # Extra arguments of the batch-inference step.
    inference_args: JobArgs = []
    # Per step: the Kubernetes Job's activeDeadlineSeconds and the task's TimeoutSeconds.
    step_timeout_seconds: int = Field(4 * 3600, ge=300, le=7 * 24 * 3600)
    # Retries of a failed step.
    retries: int = Field(1, ge=0, le=5)
    # Step Functions execution logging level.
    log_level: SfnLogLevel = "ALL"
    # Days the pipeline's logs are kept.
    log_retention_days: RetentionDays = 365
    # Concurrent executions reserved for the orchestrator's Lambda function (one per running step is enough).
    # null (the default): none reserved. AWS refuses a reservation that leaves less than 100 unreserved, so an
    # account still at the new-account concurrency quota of 10 cannot reserve any (`make preflight` checks it).
    reserved_concurrency: int | None = Field(None, ge=1, le=100)

    @model_validator(mode="after")
    def _managed(self) -> OrchestratorConfig:
        for field in ("training_args", "inference_args"):
            arg = _no_managed_args(getattr(self, field) or [])
            if arg:
                raise FieldError(field, f"{arg} is set by the orchestrator (per-execution run directory); remove it")
        return self


class AlertsConfig(_Model):
    """Thresholds of the PrometheusRules installed with kube_prometheus_stack (runbooks: docs/observability.md)."""

    # RayHeadMemoryHigh: the head container's memory above this percentage of its limit ...
    head_memory_percent: int = Field(85, ge=50, le=99)
    # ... for this many minutes.
    head_memory_minutes: int = Field(5, ge=1, le=120)
    # RayWorkerPodsPending: a Ray worker pod Pending (no node has room, or none can be added) for this many minutes.
    worker_pending_minutes: int = Field(15, ge=1, le=1440)
    # RayPodNotStarting: a Ray pod's containers waiting to be created (volume mount, often FSx; image pull) this long.
    pod_start_minutes: int = Field(15, ge=5, le=1440)
    # RayGpusIdle: a GPU held by a Ray pod under this utilisation (percent) ...
    gpu_idle_percent: int = Field(10, ge=1, le=100)
    # ... for this many minutes (GPUs paid for and not used).
    gpu_idle_minutes: int = Field(30, ge=5, le=1440)


class ObservabilityConfig(_Model):
    """Metrics of Ray and KubeRay; optional Prometheus + Grafana; optional CloudWatch Container Insights."""

    # annotations: prometheus.io/* on the Ray pods (any Prometheus); monitors: PodMonitor/ServiceMonitor
    # (Prometheus Operator CRDs: installed by kube_prometheus_stack or already in the cluster); none. Unset:
    # monitors with kube_prometheus_stack, annotations otherwise.
    metrics_scrape: MetricsScrapeMode | None = None
    # Install Prometheus + Grafana (kube-prometheus-stack) in monitoring_namespace.
    kube_prometheus_stack: bool = False
    # kube-prometheus-stack chart version.
    kube_prometheus_stack_chart_version: ChartVersion = versions.KUBE_PROMETHEUS_STACK_CHART
    # The namespace of kube-prometheus-stack.
    monitoring_namespace: Namespace = "monitoring"
    # The Grafana URL the Ray dashboard embeds, as your browser reaches it (default: kubectl port-forward).
    grafana_iframe_host: BrowserUrl = "http://localhost:3000"
    # CloudWatch Container Insights (the amazon-cloudwatch-observability add-on).
    container_insights: bool = False
    # None: the add-on's default version for the cluster's Kubernetes version.
    container_insights_addon_version: AddonVersion | None = None
    # NVIDIA's DCGM exporter on every GPU node: GPU utilisation, memory, temperature, power (needs a gpu group).
    # Scraped through a ServiceMonitor with kube_prometheus_stack, through prometheus.io/* annotations otherwise.
    dcgm_exporter: bool = False
    # NVIDIA dcgm-exporter chart version.
    dcgm_exporter_chart_version: ChartVersion = versions.DCGM_EXPORTER_CHART
    # Alert thresholds (the PrometheusRules come with kube_prometheus_stack).
    alerts: AlertsConfig = AlertsConfig()

    @property
    def scrape_mode(self) -> MetricsScrapeMode:
        """How the Ray pods are scraped: metrics_scrape, or when unset what the chosen Prometheus reads
        (kube-prometheus-stack's reads PodMonitors; any other, prometheus.io/* annotations). Every reader uses this."""
        if self.metrics_scrape is not None:
            return self.metrics_scrape
        return "monitors" if self.kube_prometheus_stack else "annotations"


class AppConfig(_Model):
    """The whole deployment. Defaults: a complete GPU deployment in us-west-2."""

    # The deployment's name: the prefix of every AWS name, the EKS cluster's name.
    name: DeploymentName = "ray-eks"
    # The AWS region of the deployment.
    region: Region = "us-west-2"
    # Tags on every AWS resource (with ray-eks:deployment = name).
    tags: Tags = {"project": "ray-on-eks", "managed-by": "cdktf"}
    backend: BackendConfig = BackendConfig()
    endpoints: EndpointsConfig = EndpointsConfig()
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    fsx: FsxConfig = FsxConfig()
    ecr: EcrConfig = EcrConfig()
    protection: ProtectionConfig = ProtectionConfig()
    ray: RayConfig = RayConfig()
    training: TrainingConfig = TrainingConfig()
    orchestrator: OrchestratorConfig = OrchestratorConfig()
    observability: ObservabilityConfig = ObservabilityConfig()

    @property
    def deployment_tags(self) -> dict[str, str]:
        """The tags on every AWS resource of the deployment: the provider's default_tags, and what the launch
        templates put on instances, volumes and network interfaces (default_tags do not reach those)."""
        return {**self.tags, DEPLOYMENT_TAG: self.name}

    @model_validator(mode="after")
    def _cross(self) -> AppConfig:
        obs = self.observability
        if obs.kube_prometheus_stack and obs.monitoring_namespace == self.ray.namespace:
            raise FieldError(("observability", "monitoring_namespace"),
                             f"{obs.monitoring_namespace!r} is also ray.namespace; kube_prometheus_stack creates its "
                             f"own namespace, so give it another name")
        if self.ray.operator_namespace == self.ray.namespace:
            raise FieldError(("ray", "operator_namespace"),
                             f"{self.ray.operator_namespace!r} is also ray.namespace; the operator runs apart from the "
                             f"Ray pods, so give it another name")
        if obs.kube_prometheus_stack and obs.monitoring_namespace == self.ray.operator_namespace:
            raise FieldError(("observability", "monitoring_namespace"),
                             f"{obs.monitoring_namespace!r} is also ray.operator_namespace; give it another name")
        if obs.kube_prometheus_stack and obs.scrape_mode == "annotations":
            raise FieldError(("observability", "metrics_scrape"),
                             "kube_prometheus_stack's Prometheus reads PodMonitors, not prometheus.io/* annotations: "
                             "set monitors or none, or leave it out (monitors)")
        if obs.dcgm_exporter and not self.cluster.has_gpu:
            raise FieldError(("observability", "dcgm_exporter"),
                             "the cluster has no gpu node group, so there is no GPU to export metrics of")
        groups = {g.name: g for g in self.cluster.node_groups}
        # A node group's tags: the provider's default tags plus cluster-autoscaler's (enabled, owner, and one per
        # label and taint key). EKS allows 50 (botocore eks TagMap).
        default_tags = len(self.deployment_tags)
        for i, ng in enumerate(self.cluster.node_groups):
            if self.cluster.is_karpenter_pool(ng):
                continue  # no node group, no cluster-autoscaler tags
            autoscaler = len(cluster_autoscaler_tags("", ng.kubernetes_labels, ng.kubernetes_taints))
            if default_tags + autoscaler > AWS_MAX_TAGS:
                raise FieldError(("cluster", "node_groups", i, "labels"),
                                 f"node group {ng.name!r} would carry {default_tags + autoscaler} tags "
                                 f"({default_tags} of the deployment, {autoscaler} for cluster-autoscaler: one per "
                                 f"label and taint); EKS allows {AWS_MAX_TAGS}: drop labels, taints or tags")
        for i, w in enumerate(self.ray.worker_groups):
            g = groups.get(w.node_group)
            if g is None:
                raise FieldError(("ray", "worker_groups", i, "node_group"),
                                 f"no node group named {w.node_group!r} (have {', '.join(groups)})")
            if w.gpus > 0 and g.role != GPU_ROLE:
                raise FieldError(("ray", "worker_groups", i, "gpus"),
                                 f"node group {g.name!r} has no GPUs; set gpus: 0 or use a gpu group")
            # Workers tolerate the GPU taint when they request GPUs, and nothing else.
            repelling = [str(t) for t in g.kubernetes_taints if t.repels and not (w.gpus and t.key == GPU_TAINT_KEY)]
            if repelling:
                why = (" (workers with gpus: 0 do not tolerate the GPU taint)"
                       if g.role == GPU_ROLE and not w.gpus else "")
                raise FieldError(("ray", "worker_groups", i, "node_group"),
                                 f"node group {g.name!r} is tainted {', '.join(repelling)}, which these workers do "
                                 f"not tolerate{why}; use another group")
            requests = ray_worker_pod_requests(w.cpu, w.memory, w.gpus)
            self._fits(("ray", "worker_groups", i), g, requests,
                       {"cpu": w.cpu, "memory": w.memory, "gpus": str(w.gpus)}, {})
            self._holds(i, w, g, requests)
        head = self.ray.head
        self._fits(("ray", "head"), self.cluster.core_group, ray_head_pod_requests(head.cpu, head.memory),
                   {"cpu": head.cpu, "memory": head.memory, "gpus": "0"},
                   pod_requests([AUTOSCALER_RESOURCES]))
        secret = self.ray.image.docker_hub_secret_arn
        if secret:
            secret_region = PULL_THROUGH_SECRET_RE.match(secret).group(1)  # type: ignore[union-attr]
            if secret_region != self.region:
                raise FieldError(("ray", "image", "docker_hub_secret_arn"),
                                 f"the secret must be in the deployment's region {self.region} (ECR reads it from "
                                 f"the pull-through cache rule's region), got {secret_region}")
        for field in ("import_prefix", "export_prefix"):
            prefix = getattr(self.fsx, field)
            if prefix.startswith(IMAGE_BUILD_S3_PREFIX) or IMAGE_BUILD_S3_PREFIX.startswith(prefix):
                raise FieldError(("fsx", field), f"must not overlap {IMAGE_BUILD_S3_PREFIX} (the image build's "
                                                 f"source in the data bucket), got {prefix}")
        for az in self.network.availability_zones:
            if not az.startswith(self.region) or len(az) != len(self.region) + 1:
                raise FieldError(("network", "availability_zones"),
                                 f"{az} is not an AZ of region {self.region} (expected names such as {self.region}a)")
        self._zones_exist()
        return self

    def _zones_exist(self) -> None:
        """The AZs the network spans exist in the region (config/regions.yaml; make preflight asks the account)."""
        net, zones = self.network, regions.availability_zones(self.region)
        if zones is None or net.existing is not None:
            return  # a region the catalogue does not know; an existing VPC's subnets are where they are
        unknown = [z for z in net.availability_zones if z not in zones]
        if unknown:
            raise FieldError(("network", "availability_zones"),
                             f"{', '.join(unknown)} is not an Availability Zone of {self.region} (it has "
                             f"{', '.join(zones)})")
        if not net.availability_zones and net.az_count > len(zones):
            raise FieldError(("network", "az_count"),
                             f"{net.az_count} AZs, and {self.region} has {len(zones)} ({', '.join(zones)}): at most "
                             f"{len(zones)}")

    def pod_room_on(self, t: InstanceType, role: str) -> PodRoom:
        """What one pod can request on an otherwise empty node of type ``t`` in a group of ``role`` (a managed node
        group's or a Karpenter pool's): after the kubelet's reservations and every DaemonSet this config installs
        there. The one place the node-fit checks below take the optional DaemonSets from."""
        obs = self.observability
        return pod_room(t, role, kube_prometheus_stack=obs.kube_prometheus_stack,
                        container_insights=obs.container_insights, dcgm_exporter=obs.dcgm_exporter)

    def _holds(self, i: int, w: WorkerGroupConfig, group: NodeGroupConfig, requests: dict) -> None:
        """max_replicas workers can all run on their node group at its max_size (else the rest wait forever).
        Each worker group alone: two groups sharing a node group are not added up (their pods may pack together)."""
        per_node = {t.name: pods_per_node(self.pod_room_on(t, group.role), requests) for t in group.instance_type_specs}

        def most(size: int) -> tuple[int, InstanceType]:
            # The most workers, on the fewest nodes.
            return max(((per_node[t.name] * group.max_nodes(t, size), t) for t in group.instance_type_specs),
                       key=lambda x: (x[0], per_node[x[1].name]))

        best, t = most(group.max_size)
        if w.max_replicas <= best:
            return
        j = self.cluster.node_groups.index(group)
        enough = next((n for n in range(group.max_size + 1, 1001) if most(n)[0] >= w.max_replicas), None)
        raise_it = f" or raise cluster.node_groups[{j}].max_size to {enough}" if enough else ""
        raise FieldError(("ray", "worker_groups", i, "max_replicas"),
                         f"{w.max_replicas} workers never fit node group {group.name!r} at its max_size "
                         f"{group.max_size}: one {t.name} node holds {per_node[t.name]}, so {best} run and the rest "
                         f"stay Pending; lower max_replicas to {best}{raise_it}")

    def _fits(self, loc: tuple, group: NodeGroupConfig, requests: dict, asked: dict[str, str], sidecars: dict) -> None:
        """A Ray pod must fit one node of its group, on every instance type of the group."""
        for t in group.instance_type_specs:
            problem = misfit(self.pod_room_on(t, group.role), group.name, requests, asked, sidecars)
            if problem:
                raise FieldError((*loc, problem[0]), problem[1])

    def warnings(self) -> list[str]:
        """Allowed but dangerous settings, printed loudly at every synth."""
        out = []
        if any(_is_open(c) for c in self.cluster.public_access_cidrs):
            out.append("cluster.public_access_cidrs contains 0.0.0.0/0: the Kubernetes API endpoint is open to the "
                       "whole internet. Restrict it to your office/VPN CIDRs.")
        if not self.fsx.has_durable_copy:
            out.append("fsx.data_repository is false and fsx has no backups (backup_retention_days, final_backup): "
                       "the file system holds the only copy of what Ray writes to it.")
        if self.observability.kube_prometheus_stack and self.ray.ray_version != versions.RAY_VERSION:
            out.append(f"observability: Grafana gets Ray {versions.RAY_VERSION}'s dashboards (observability/"
                       f"ray_dashboards/), and ray.ray_version is {self.ray.ray_version}: their panels may miss "
                       f"metrics; regenerate them with that Ray (python -m scripts.generate_dashboards).")
        if not self.protection.prevent_destroy:
            out.append("protection.prevent_destroy is false: FSx, the data bucket and the ECR repository can be "
                       "destroyed with their data. Use this only for throwaway environments.")
        return out

    @property
    def orchestrator_enabled(self) -> bool:
        return self.cluster.has_gpu if self.orchestrator.enabled is None else self.orchestrator.enabled

    @property
    def orchestrator_training_args(self) -> list[str]:
        args = self.orchestrator.training_args
        return list(self.training.args if args is None else args)

    @property
    def stock_ray_image(self) -> str:
        """rayproject/ray at ray_version: the CUDA 13.0 build for GPU clusters, else the CPU one. Also the base
        (FROM) of the built image."""
        suffix = f"-{versions.RAY_IMAGE_CUDA}" if self.cluster.has_gpu else ""
        return f"rayproject/ray:{self.ray.ray_version}-py311{suffix}"

    @property
    def pinned_stock_ray_image(self) -> str:
        """stock_ray_image by digest when config/image_digests.json records it (the stock pods' image and the
        build's FROM), else by tag."""
        return versions.pinned_image(self.stock_ray_image)

    def ray_image(self, built_image: str | None = None) -> str:
        """The image of the Ray pods. ``built_image``: the infra stack's build output (source build only)."""
        image = self.ray.image
        if image.source == "custom":
            return image.uri  # type: ignore[return-value]
        if image.source == "stock":
            return self.pinned_stock_ray_image
        if not built_image:
            raise ValueError("ray.image.source is build: the image is the infra stack's ray_image output")
        return built_image
