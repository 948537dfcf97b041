"""The one typed configuration of the app.

Everything the stacks build comes from an ``AppConfig``. It is loaded from the YAML file named by
``RAY_EKS_CONFIG`` (no variable: the defaults, a complete GPU deployment) and validated up front:
``load_config`` either returns a valid config or raises ``ConfigError`` with one line naming the
field and what is allowed. Config flows one way: config -> stacks -> constructs.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ENV_VAR = "RAY_EKS_CONFIG"

# Ray version of the RayCluster image, the custom image's base and the training job's local test runs.
RAY_VERSION = "2.58.0"
KUBERAY_VERSION = "1.7.0"

SUPPORTED_KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35")
# Instance families with NVIDIA GPUs that the AL2023 NVIDIA AMI supports.
GPU_INSTANCE_FAMILIES = ("g4dn", "g5", "g5g", "g6", "g6e", "gr6", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6")
GPU_AMI_TYPES = ("AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA")
CPU_AMI_TYPES = ("AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64")
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
# Per-unit storage throughput (MB/s/TiB) allowed per FSx for Lustre deployment type; None: not settable.
FSX_THROUGHPUT = {"SCRATCH_2": None, "PERSISTENT_1": (50, 100, 200), "PERSISTENT_2": (125, 250, 500, 1000)}

REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
GROUP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]$")
K8S_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]{1,128}$")
TAG_VALUE_RE = re.compile(r"^[\w .:/=+\-@]{0,256}$")
PRINCIPAL_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}$")
INSTANCE_TYPE_RE = re.compile(r"^([a-z][a-z0-9-]*)\.([a-z0-9-]+)$")
CPU_MEMORY_RE = re.compile(r"^\d+(\.\d+)?(m)?$")
MEMORY_RE = re.compile(r"^\d+(Ki|Mi|Gi|Ti)$")


class ConfigError(Exception):
    """A configuration problem, as one human-readable line."""

    def __init__(self, message: str) -> None:
        # One line, whatever the parts it was built from held (a YAML snippet, a long value).
        super().__init__(" ".join(str(message).split()))


class _Model(BaseModel):
    # Unknown keys are typos, not extensions: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        raise ValueError(f"must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set, got {value!r}") from None


def _retention_days(v: int) -> int:
    if v not in LOG_RETENTION_DAYS:
        raise ValueError(f"must be one of the CloudWatch retention periods {LOG_RETENTION_DAYS}, got {v}")
    return v


def _dns_label(v: str) -> str:
    if not K8S_NAME_RE.match(v) or len(v) > 40:
        raise ValueError(f"must be a DNS label of at most 40 characters (lowercase letters, digits, '-'), got {v!r}")
    return v


def _cpu_quantity(v: str) -> str:
    if not CPU_MEMORY_RE.match(str(v)):
        raise ValueError(f"must be a Kubernetes CPU quantity such as 4 or 500m, got {v!r}")
    return str(v)


def _memory_quantity(v: str) -> str:
    if not MEMORY_RE.match(v):
        raise ValueError(f"must be a Kubernetes memory quantity such as 16Gi, got {v!r}")
    return v


# Validated building blocks: one rule, one message, wherever the kind of value appears.
Cidr = Annotated[str, AfterValidator(_cidr)]
RetentionDays = Annotated[int, AfterValidator(_retention_days)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
CpuQuantity = Annotated[str, BeforeValidator(str), AfterValidator(_cpu_quantity)]
MemoryQuantity = Annotated[str, AfterValidator(_memory_quantity)]


# --------------------------------------------------------------------------------------------- AWS side
class BackendConfig(_Model):
    """Where Terraform state lives. ``local`` for a laptop; ``s3`` (native lock file) for teams."""

    type: Literal["local", "s3"] = "local"
    bucket: Optional[str] = None
    key_prefix: str = "ray-eks"
    region: Optional[str] = None  # defaults to the deployment's region
    kms_key_id: Optional[str] = None
    local_dir: str = "state"  # relative to the project root

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> "BackendConfig":
        if self.type == "s3" and not self.bucket:
            raise ValueError("bucket: required when type is s3")
        if self.bucket and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket):
            raise ValueError(f"bucket: must be a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-'), got {self.bucket!r}")
        if self.region and not REGION_RE.match(self.region):
            raise ValueError(f"region: must be an AWS region such as us-west-2, got {self.region!r}")
        return self


class EndpointsConfig(_Model):
    """Point the AWS provider at an emulator (moto, LocalStack). Off by default."""

    url: Optional[str] = None
    access_key: str = "testing"
    secret_key: str = "testing"

    @field_validator("url")
    @classmethod
    def _url(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.fullmatch(r"https?://[^\s/]+(:\d+)?/?", v):
            raise ValueError(f"must be an http(s) URL such as http://127.0.0.1:5000, got {v!r}")
        return v


class ExistingVpcConfig(_Model):
    vpc_id: str
    private_subnet_ids: list[str]
    public_subnet_ids: list[str] = []

    @field_validator("vpc_id")
    @classmethod
    def _vpc(cls, v: str) -> str:
        if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", v):
            raise ValueError(f"must be a VPC id such as vpc-0123456789abcdef0, got {v!r}")
        return v

    @field_validator("private_subnet_ids", "public_subnet_ids")
    @classmethod
    def _subnets(cls, v: list[str]) -> list[str]:
        for s in v:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s):
                raise ValueError(f"must be subnet ids such as subnet-0123456789abcdef0, got {s!r}")
        return v

    @model_validator(mode="after")
    def _two_azs(self) -> "ExistingVpcConfig":
        if len(self.private_subnet_ids) < 2:
            raise ValueError("private_subnet_ids: at least 2 subnets in different AZs are required (EKS needs 2 AZs)")
        return self


class NetworkConfig(_Model):
    vpc_cidr: str = "10.0.0.0/16"
    # Empty: the first `az_count` AZs of the region, looked up at plan time.
    availability_zones: list[str] = []
    az_count: int = Field(3, ge=2, le=6)
    # Empty: carved from vpc_cidr (private /19s for pods, public /24s for NAT and load balancers).
    private_subnet_cidrs: list[Cidr] = []
    public_subnet_cidrs: list[Cidr] = []
    # One NAT gateway per AZ survives an AZ outage; a single one is cheaper for dev.
    single_nat_gateway: bool = False
    flow_log_retention_days: RetentionDays = 365
    existing: Optional[ExistingVpcConfig] = None

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, v: str) -> str:
        v = _cidr(v)
        if not 16 <= ipaddress.ip_network(v).prefixlen <= 24:
            raise ValueError(f"must be a /16 to /24 network (AWS VPC limits), got {v}")
        return v

    @field_validator("availability_zones")
    @classmethod
    def _azs(cls, v: list[str]) -> list[str]:
        for az in v:
            if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d[a-z]", az):
                raise ValueError(f"must be AZ names such as us-west-2a, got {az!r}")
        if len(set(v)) != len(v):
            raise ValueError("must not repeat an AZ")
        return v

    @property
    def zone_count(self) -> int:
        return len(self.availability_zones) or self.az_count

    @model_validator(mode="after")
    def _layout(self) -> "NetworkConfig":
        if self.availability_zones and len(self.availability_zones) < 2:
            raise ValueError(f"availability_zones: at least 2 AZs are required (EKS and FSx need 2), got {len(self.availability_zones)}")
        n = self.zone_count
        vpc = ipaddress.ip_network(self.vpc_cidr)
        subnets = []
        for field in ("private_subnet_cidrs", "public_subnet_cidrs"):
            cidrs = getattr(self, field)
            if cidrs and len(cidrs) != n:
                raise ValueError(f"{field}: needs one CIDR per AZ ({n}), got {len(cidrs)}")
            for c in cidrs:
                net = ipaddress.ip_network(c)
                if not net.subnet_of(vpc):
                    raise ValueError(f"{field}: {c} is not inside vpc_cidr {self.vpc_cidr}")
                subnets.append((field, net))
        for i, (fa, a) in enumerate(subnets):
            for fb, b in subnets[i + 1 :]:
                if a.overlaps(b):
                    raise ValueError(f"{fb}: {b} overlaps {a} ({fa}); subnet CIDRs must not overlap")
        if not self.private_subnet_cidrs or not self.public_subnet_cidrs:
            # Carving needs room for n private /19-equivalents (prefix +3) and public /24-equivalents (prefix +8).
            if n > 6:
                raise ValueError("az_count: at most 6 AZs can be carved from vpc_cidr automatically")
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
        last_eighth = list(vpc.subnets(prefixlen_diff=3))[-1]
        return [str(s) for s in list(last_eighth.subnets(prefixlen_diff=5))[: self.zone_count]]


class Taint(_Model):
    key: str
    value: str = ""
    effect: Literal["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"] = "NO_SCHEDULE"

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not LABEL_KEY_RE.match(v):
            raise ValueError(f"must be a Kubernetes label key such as nvidia.com/gpu, got {v!r}")
        return v


class NodeGroupConfig(_Model):
    """One EKS managed node group (its name becomes part of resource addresses: keep it stable)."""

    name: str
    role: Literal["core", "gpu", "cpu"] = Field("cpu", description="core: system + Ray head; gpu: GPU workers; cpu: CPU workers")
    instance_types: list[str] = Field(min_length=1)
    ami_type: str = "AL2023_x86_64_STANDARD"
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    min_size: int = Field(1, ge=0, le=1000)
    desired_size: int = Field(1, ge=0, le=1000)
    max_size: int = Field(3, ge=1, le=1000)
    disk_size_gib: int = Field(100, ge=20, le=16384)
    labels: dict[str, str] = {}
    taints: list[Taint] = []

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not GROUP_NAME_RE.match(v):
            raise ValueError(f"must be 2-20 lowercase letters, digits or '-', starting with a letter, got {v!r}")
        return v

    @field_validator("instance_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        for t in v:
            if not INSTANCE_TYPE_RE.match(t):
                raise ValueError(f"must be EC2 instance types such as m6i.2xlarge, got {t!r}")
        return v

    @field_validator("ami_type")
    @classmethod
    def _ami(cls, v: str) -> str:
        if v not in GPU_AMI_TYPES + CPU_AMI_TYPES:
            raise ValueError(f"must be one of {', '.join(CPU_AMI_TYPES + GPU_AMI_TYPES)}, got {v!r}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not LABEL_KEY_RE.match(k) or not LABEL_VALUE_RE.match(str(val)):
                raise ValueError(f"{k}={val!r} is not a valid Kubernetes label (keys like usage, values up to 63 [A-Za-z0-9-_.])")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "NodeGroupConfig":
        if self.min_size > self.max_size:
            raise ValueError(f"min_size: {self.min_size} is greater than max_size {self.max_size}")
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(f"desired_size: must be between min_size {self.min_size} and max_size {self.max_size}, got {self.desired_size}")
        families = {INSTANCE_TYPE_RE.match(t).group(1) for t in self.instance_types}
        if self.role == "gpu":
            bad = sorted(f for f in families if f not in GPU_INSTANCE_FAMILIES)
            if bad:
                raise ValueError(f"instance_types: a gpu group needs NVIDIA GPU instance families ({', '.join(GPU_INSTANCE_FAMILIES)}), got {', '.join(bad)}")
            if self.ami_type not in GPU_AMI_TYPES:
                raise ValueError(f"ami_type: a gpu group needs an NVIDIA AMI ({', '.join(GPU_AMI_TYPES)}), got {self.ami_type}")
        elif self.ami_type in GPU_AMI_TYPES:
            raise ValueError(f"ami_type: {self.ami_type} is for gpu groups; a {self.role} group uses one of {', '.join(CPU_AMI_TYPES)}")
        return self

    @property
    def kubernetes_labels(self) -> dict[str, str]:
        base = {"usage": self.role}
        base.update(self.labels)
        return base

    @property
    def kubernetes_taints(self) -> list[Taint]:
        if self.role == "gpu" and not any(t.key == "nvidia.com/gpu" for t in self.taints):
            return [Taint(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE"), *self.taints]
        return list(self.taints)


def _default_node_groups() -> list[NodeGroupConfig]:
    return [
        NodeGroupConfig(name="core", role="core", instance_types=["m6i.2xlarge"], min_size=2, desired_size=2, max_size=4, disk_size_gib=100),
        NodeGroupConfig(
            name="gpu", role="gpu", instance_types=["g5.xlarge"], ami_type="AL2023_x86_64_NVIDIA",
            min_size=0, desired_size=0, max_size=4, disk_size_gib=200,
        ),
    ]


class ClusterConfig(_Model):
    kubernetes_version: str = "1.34"
    # Empty: no public endpoint (reach the API over VPN/peering). Set your office/VPN CIDRs to enable it.
    public_access_cidrs: list[Cidr] = []
    # IAM roles/users granted cluster admin through EKS access entries (API authentication mode).
    admin_principal_arns: list[str] = []
    # The identity running `cdktf deploy` gets admin too, so the ray stack can install into the cluster.
    creator_is_admin: bool = True
    log_types: list[str] = list(CONTROL_PLANE_LOG_TYPES)
    log_retention_days: RetentionDays = 365
    node_groups: list[NodeGroupConfig] = Field(default_factory=_default_node_groups)

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if v not in SUPPORTED_KUBERNETES_VERSIONS:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}, got {v!r}")
        return v

    @field_validator("admin_principal_arns")
    @classmethod
    def _principals(cls, v: list[str]) -> list[str]:
        for arn in v:
            if not PRINCIPAL_ARN_RE.match(arn):
                raise ValueError(f"must be IAM role or user ARNs such as arn:aws:iam::123456789012:role/Admin, got {arn!r}")
        return v

    @field_validator("log_types")
    @classmethod
    def _logs(cls, v: list[str]) -> list[str]:
        for t in v:
            if t not in CONTROL_PLANE_LOG_TYPES:
                raise ValueError(f"must be from {', '.join(CONTROL_PLANE_LOG_TYPES)}, got {t!r}")
        return v

    @model_validator(mode="after")
    def _groups(self) -> "ClusterConfig":
        names = [g.name for g in self.node_groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node_groups: names must be unique, {', '.join(dupes)} repeats")
        if sum(g.role == "core" for g in self.node_groups) != 1:
            raise ValueError("node_groups: exactly one group must have role core (system pods and the Ray head run there)")
        return self

    @property
    def core_group(self) -> NodeGroupConfig:
        return next(g for g in self.node_groups if g.role == "core")

    @property
    def has_gpu(self) -> bool:
        return any(g.role == "gpu" for g in self.node_groups)


class FsxConfig(_Model):
    deployment_type: Literal["SCRATCH_2", "PERSISTENT_1", "PERSISTENT_2"] = "PERSISTENT_2"
    storage_capacity_gib: int = 1200
    per_unit_storage_throughput: Optional[int] = None  # MB/s/TiB; default: the smallest allowed
    # S3 prefixes of the data bucket linked to the file system (as in the original deployment).
    import_prefix: str = "ray/import/"
    export_prefix: str = "ray/export/"

    @model_validator(mode="after")
    def _capacity(self) -> "FsxConfig":
        c = self.storage_capacity_gib
        if not (c == 1200 or (c > 0 and c % 2400 == 0)):
            raise ValueError(f"storage_capacity_gib: {self.deployment_type} allows 1200 or a multiple of 2400 GiB, got {c}")
        allowed = FSX_THROUGHPUT[self.deployment_type]
        t = self.per_unit_storage_throughput
        if allowed is None and t is not None:
            raise ValueError(f"per_unit_storage_throughput: not settable for {self.deployment_type}; remove it")
        if allowed is not None and t is not None and t not in allowed:
            raise ValueError(f"per_unit_storage_throughput: {self.deployment_type} allows {', '.join(map(str, allowed))}, got {t}")
        for field in ("import_prefix", "export_prefix"):
            p = getattr(self, field)
            if not re.fullmatch(r"([A-Za-z0-9._-]+/)+", p):
                raise ValueError(f"{field}: must be an S3 prefix such as ray/import/ (ending in '/'), got {p!r}")
        if self.import_prefix.startswith(self.export_prefix) or self.export_prefix.startswith(self.import_prefix):
            raise ValueError("export_prefix: must not overlap import_prefix")
        return self

    @property
    def throughput(self) -> Optional[int]:
        allowed = FSX_THROUGHPUT[self.deployment_type]
        return self.per_unit_storage_throughput or (allowed[0] if allowed else None)

    @property
    def is_persistent(self) -> bool:
        return self.deployment_type.startswith("PERSISTENT")


class EcrConfig(_Model):
    repository_name: str = "ray-custom"
    keep_last_images: int = Field(30, ge=1, le=1000)

    @field_validator("repository_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*", v) or len(v) > 256:
            raise ValueError(f"must be a lowercase ECR repository name such as ray-custom, got {v!r}")
        return v


class ProtectionConfig(_Model):
    """Guards on stateful resources. Turn off only for throwaway environments."""

    # FSx, the data bucket and the ECR repository get lifecycle.prevent_destroy and no force-delete.
    prevent_destroy: bool = True


# --------------------------------------------------------------------------------------------- Ray side
class WorkerGroupConfig(_Model):
    name: DnsLabel
    node_group: str  # which node group (by name) the workers run on
    min_replicas: int = Field(0, ge=0, le=1000)
    max_replicas: int = Field(4, ge=1, le=1000)
    cpu: CpuQuantity = "3"
    memory: MemoryQuantity = "12Gi"
    gpus: int = Field(1, ge=0, le=8)

    @model_validator(mode="after")
    def _range(self) -> "WorkerGroupConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas: {self.min_replicas} is greater than max_replicas {self.max_replicas}")
        return self


class HeadConfig(_Model):
    cpu: CpuQuantity = "2"
    memory: MemoryQuantity = "8Gi"

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if _mebibytes(v) < 4096:
            raise ValueError(f"must be at least 4Gi (smaller Ray heads run out of memory), got {v}")
        return v


def _mebibytes(q: str) -> float:
    n, unit = int(q[:-2]), q[-2:]
    return n * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}[unit]


def _default_worker_groups() -> list[WorkerGroupConfig]:
    return [WorkerGroupConfig(name="gpu-group", node_group="gpu", min_replicas=0, max_replicas=4, cpu="3", memory="12Gi", gpus=1)]


class RayConfig(_Model):
    namespace: DnsLabel = "ray"
    # The RayCluster name; KubeRay names the head service "<name>-head-svc" (the user guide uses kuberay-head-svc).
    cluster_name: DnsLabel = "kuberay"
    ray_version: str = RAY_VERSION
    # Empty: the ECR repository's image tagged with ray_version when use_ecr_image, else rayproject/ray.
    image: Optional[str] = None
    use_ecr_image: bool = False
    idle_timeout_seconds: int = Field(60, ge=0, le=86400)
    head: HeadConfig = HeadConfig()
    worker_groups: list[WorkerGroupConfig] = Field(default_factory=_default_worker_groups)
    # Node autoscaling for pending Ray pods.
    cluster_autoscaler_chart_version: str = "9.52.1"
    nvidia_device_plugin_chart_version: str = "0.18.0"
    kuberay_operator_chart_version: str = KUBERAY_VERSION

    @field_validator("ray_version")
    @classmethod
    def _ray_version(cls, v: str) -> str:
        if not re.fullmatch(r"2\.\d+\.\d+", v):
            raise ValueError(f"must be a Ray 2.x release such as {RAY_VERSION}, got {v!r}")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and (not re.fullmatch(r"[\w.\-/:@]+", v) or "ray-ml" in v):
            raise ValueError(f"must be a container image reference (not the frozen rayproject/ray-ml), got {v!r}")
        return v

    @model_validator(mode="after")
    def _groups(self) -> "RayConfig":
        names = [g.name for g in self.worker_groups]
        if len(set(names)) != len(names):
            raise ValueError("worker_groups: names must be unique")
        if self.image and self.use_ecr_image:
            raise ValueError("image: set either image or use_ecr_image, not both")
        return self

    @property
    def head_service(self) -> str:
        return f"{self.cluster_name}-head-svc"


# --------------------------------------------------------------------------------------------- orchestration, observability
# The orchestrator adds these itself (per-execution run directory); setting them in the args is an error.
ORCHESTRATOR_MANAGED_ARGS = ("--storage-path", "--checkpoint", "--output-path")
# Job arguments end up in a shell command and in Terraform JSON: plain tokens only (no quotes, spaces, ${}).
JOB_ARG_RE = re.compile(r"^[\w./:=@+,%-]+$")
SFN_LOG_LEVELS = ("ALL", "ERROR", "FATAL", "OFF")
METRICS_SCRAPE_MODES = ("none", "annotations", "monitors")
KUBE_PROMETHEUS_STACK_VERSION = "79.7.1"


class OrchestratorConfig(_Model):
    """Step Functions pipeline: a training Job, then a batch-inference Job, on the running RayCluster."""

    # None: on when the cluster has a GPU node group (the GPU profile), off otherwise.
    enabled: Optional[bool] = None
    training_args: list[str] = ["--data-size-gb", "1", "--num-epochs", "2", "--num-workers", "1"]
    inference_args: list[str] = []
    # Per step: the Kubernetes Job's activeDeadlineSeconds and the task's TimeoutSeconds.
    step_timeout_seconds: int = Field(4 * 3600, ge=300, le=7 * 24 * 3600)
    retries: int = Field(1, ge=0, le=5)
    log_level: str = "ALL"
    log_retention_days: RetentionDays = 365

    @field_validator("training_args", "inference_args")
    @classmethod
    def _args(cls, v: list[str]) -> list[str]:
        for a in v:
            if not JOB_ARG_RE.match(str(a)):
                raise ValueError(f"must be plain tokens of letters, digits and ._/:=@+,%- (no spaces, quotes or ${{}}), got {a!r}")
            if str(a).split("=", 1)[0] in ORCHESTRATOR_MANAGED_ARGS:
                raise ValueError(f"{a} is set by the orchestrator (per-execution run directory); remove it")
        return [str(a) for a in v]

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v not in SFN_LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(SFN_LOG_LEVELS)}, got {v!r}")
        return v


class ObservabilityConfig(_Model):
    """Metrics of Ray and KubeRay; optional Prometheus + Grafana; optional CloudWatch Container Insights."""

    # annotations: prometheus.io/* on the Ray pods (any Prometheus); monitors: PodMonitor/ServiceMonitor
    # (Prometheus Operator CRDs: installed by kube_prometheus_stack or already in the cluster); none.
    metrics_scrape: str = "annotations"
    kube_prometheus_stack: bool = False
    kube_prometheus_stack_chart_version: str = KUBE_PROMETHEUS_STACK_VERSION
    monitoring_namespace: DnsLabel = "monitoring"
    # The Grafana URL the Ray dashboard embeds, as your browser reaches it (default: kubectl port-forward).
    grafana_iframe_host: str = "http://localhost:3000"
    container_insights: bool = False
    # None: the add-on's default version for the cluster's Kubernetes version.
    container_insights_addon_version: Optional[str] = None

    @field_validator("metrics_scrape")
    @classmethod
    def _scrape(cls, v: str) -> str:
        if v not in METRICS_SCRAPE_MODES:
            raise ValueError(f"must be one of {', '.join(METRICS_SCRAPE_MODES)}, got {v!r}")
        return v

    @field_validator("kube_prometheus_stack_chart_version")
    @classmethod
    def _chart(cls, v: str) -> str:
        if not re.fullmatch(r"\d+\.\d+\.\d+", v):
            raise ValueError(f"must be a pinned chart version such as {KUBE_PROMETHEUS_STACK_VERSION}, got {v!r}")
        return v

    @field_validator("grafana_iframe_host")
    @classmethod
    def _iframe(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[^\s/\$]+(:\d+)?(/[^\s\$]*)?", v):
            raise ValueError(f"must be an http(s) URL such as http://localhost:3000, got {v!r}")
        return v.rstrip("/")

    @field_validator("container_insights_addon_version")
    @classmethod
    def _addon(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", v):
            raise ValueError(f"must be an EKS add-on version such as v4.4.0-eksbuild.1, got {v!r}")
        return v


class AppConfig(_Model):
    """The whole deployment. Defaults: a complete GPU deployment in us-west-2."""

    name: str = "ray-eks"
    region: str = "us-west-2"
    tags: dict[str, str] = {"project": "ray-on-eks", "managed-by": "cdktf"}
    backend: BackendConfig = BackendConfig()
    endpoints: EndpointsConfig = EndpointsConfig()
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    fsx: FsxConfig = FsxConfig()
    ecr: EcrConfig = EcrConfig()
    protection: ProtectionConfig = ProtectionConfig()
    ray: RayConfig = RayConfig()
    orchestrator: OrchestratorConfig = OrchestratorConfig()
    observability: ObservabilityConfig = ObservabilityConfig()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"must be 3-32 lowercase letters, digits or '-', starting with a letter, got {v!r}")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not REGION_RE.match(v):
            raise ValueError(f"must be an AWS region such as us-west-2, got {v!r}")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > 40:
            raise ValueError("at most 40 tags (AWS allows 50 per resource; we add our own)")
        for k, val in v.items():
            if not isinstance(val, str):
                raise ValueError(f"{k}: tag values must be strings, got {type(val).__name__}")
            if k.lower().startswith("aws:") or not TAG_KEY_RE.match(k) or not TAG_VALUE_RE.match(val):
                raise ValueError(f"{k}={val!r} is not a valid AWS tag (key 1-128, value 0-256 of letters, digits, spaces and _.:/=+-@; no aws: prefix)")
        return v

    @model_validator(mode="after")
    def _cross(self) -> "AppConfig":
        groups = {g.name: g for g in self.cluster.node_groups}
        for w in self.ray.worker_groups:
            g = groups.get(w.node_group)
            if g is None:
                raise ValueError(f"ray.worker_groups.{w.name}.node_group: no node group named {w.node_group!r} (have {', '.join(groups)})")
            if w.gpus > 0 and g.role != "gpu":
                raise ValueError(f"ray.worker_groups.{w.name}.gpus: node group {g.name!r} has no GPUs; set gpus: 0 or use a gpu group")
        if self.network.existing is None and self.network.availability_zones and len(self.network.availability_zones) < 2:
            raise ValueError("network.availability_zones: at least 2 AZs are required")
        for az in self.network.availability_zones:
            if not re.fullmatch(re.escape(self.region) + r"[a-z]", az):
                raise ValueError(f"network.availability_zones: {az} is not an AZ of region {self.region} "
                                 f"(expected names such as {self.region}a)")
        return self

    def warnings(self) -> list[str]:
        """Allowed but dangerous settings, printed loudly at every synth."""
        out = []
        if any(ipaddress.ip_network(c).prefixlen == 0 for c in self.cluster.public_access_cidrs):
            out.append("cluster.public_access_cidrs contains 0.0.0.0/0: the Kubernetes API endpoint is open to the "
                       "whole internet. Restrict it to your office/VPN CIDRs.")
        if not self.protection.prevent_destroy:
            out.append("protection.prevent_destroy is false: FSx, the data bucket and the ECR repository can be "
                       "destroyed with their data. Use this only for throwaway environments.")
        if self.orchestrator_enabled and not any(ipaddress.ip_network(c).prefixlen == 0 for c in self.cluster.public_access_cidrs):
            # Step Functions' eks:runJob calls the public Kubernetes endpoint from AWS-owned addresses.
            out.append("orchestrator is enabled but cluster.public_access_cidrs does not include 0.0.0.0/0: Step Functions "
                       "reaches only public EKS endpoints, so executions will fail to start their Jobs. Open the endpoint "
                       "(IAM + RBAC still apply) or set orchestrator.enabled: false.")
        return out

    @property
    def orchestrator_enabled(self) -> bool:
        return self.cluster.has_gpu if self.orchestrator.enabled is None else self.orchestrator.enabled

    @property
    def bucket_name_prefix(self) -> str:
        return f"{self.name}-data-"

    def ray_image(self, ecr_repository_url: Optional[str] = None) -> str:
        if self.ray.image:
            return self.ray.image
        if self.ray.use_ecr_image and ecr_repository_url:
            return f"{ecr_repository_url}:{self.ray.ray_version}"
        suffix = "-gpu" if self.cluster.has_gpu else ""
        return f"rayproject/ray:{self.ray.ray_version}-py311{suffix}"


# --------------------------------------------------------------------------------------------- loading
def _location(parts: tuple) -> str:
    """("cluster", "node_groups", 1, "min_size") -> cluster.node_groups[1].min_size"""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _got(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _format(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = _location(tuple(first["loc"]))
    msg, kind = first["msg"], first["type"]
    if kind == "extra_forbidden":
        msg = "unknown key (check the spelling against the config reference in README.md)"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        # Not "instance of ClusterConfig": the user wrote YAML, not Python.
        msg = f"must be a mapping of keys, got {_got(first.get('input'))}"
    elif kind == "literal_error":
        msg = msg.replace("Input should be", "must be")
    else:
        msg = msg.replace("Input should be", "must be", 1)
        msg = f"{msg} (got {_got(first['input'])})" if "input" in first and not isinstance(first["input"], dict) else msg
    # Model-level errors name their field first ("field: ..."); fold it into the location.
    m = re.match(r"^([\w.\[\]-]+): (.*)$", msg)
    if m and " " not in m.group(1):
        loc = f"{loc}.{m.group(1)}" if loc else m.group(1)
        msg = m.group(2)
    return f"{loc or 'config'}: {msg}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (plain YAML keeps the last, silently)."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (YAML keeps only the last one)", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_config(data: object, source: str = "config") -> AppConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys (name, region, cluster, ...), got {type(data).__name__}")
    try:
        return AppConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_format(e)}") from None


def load_config(path: Optional[str] = None) -> AppConfig:
    """Load and validate the config named by ``path`` or ``$RAY_EKS_CONFIG``; defaults when neither."""
    path = path if path is not None else os.environ.get(CONFIG_ENV_VAR)
    if not path:
        return AppConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{CONFIG_ENV_VAR}: no such file {path!r}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{CONFIG_ENV_VAR}: cannot read {path!r} as UTF-8 text: {e}") from None
    if not text.strip():
        raise ConfigError(f"{path}: the file is empty; remove {CONFIG_ENV_VAR} to use the defaults, or start from config/examples/")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    return parse_config(data, source=str(path))
