"""Validated building blocks of the config: one rule and one message per kind of value, wherever it appears.

Field rules are ``Annotated`` types (``Cidr``, ``Region``, ``InstanceType``...). Rules that need several fields
live in the models' ``model_validator``s and raise ``FieldError`` with the location of the offending field, so
the loader can name it without parsing messages.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator

from conventions.kubernetes import CPU_QUANTITY_RE, MEMORY_QUANTITY_RE
from conventions.naming import NAME_RE, S3_RESERVED_PREFIXES

Location = tuple[str | int, ...]


class FieldError(ValueError):
    """A rule broken at ``loc`` below the model that raises it (``("node_groups", 1, "min_size")``)."""

    def __init__(self, loc: str | Location, message: str) -> None:
        self.loc: Location = (loc,) if isinstance(loc, str) else tuple(loc)
        self.message = message
        super().__init__(message)


def _rule(check, message: str):
    """An AfterValidator: ``check(value)`` truthy or ``ValueError(message.format(v=value))``."""

    def validate(value):
        if not check(value):
            raise ValueError(message.format(v=value))
        return value

    return AfterValidator(validate)


def _each(check, message: str):
    """Like _rule, for every item of a list (the message names the item)."""

    def validate(values):
        for v in values:
            if not check(v):
                raise ValueError(message.format(v=v))
        return values

    return AfterValidator(validate)


# ------------------------------------------------------------------------------------------- patterns
# \Z, not $ (which also matches before a final newline), and ASCII classes (\d is every script's digits otherwise);
# tags keep Unicode letters, which AWS allows.
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d\Z", re.ASCII)
AZ_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]\Z", re.ASCII)
GROUP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,18}[a-z0-9]\Z", re.ASCII)
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z", re.ASCII)
LABEL_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z",
                          re.ASCII)
LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\Z", re.ASCII)
TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]{1,128}\Z")
TAG_VALUE_RE = re.compile(r"^[\w .:/=+\-@]{0,256}\Z")
PRINCIPAL_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}\Z", re.ASCII)
INSTANCE_TYPE_RE = re.compile(r"^([a-z][a-z0-9-]*)\.([a-z0-9-]+)\Z", re.ASCII)
ECR_NAME_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*\Z", re.ASCII)
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z", re.ASCII)
S3_PREFIX_RE = re.compile(r"^([A-Za-z0-9._-]+/)+\Z", re.ASCII)
RAY_VERSION_RE = re.compile(r"^2\.\d+\.\d+\Z", re.ASCII)
IMAGE_RE = re.compile(r"^[\w.\-/:@]+\Z", re.ASCII)
CHART_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+\Z", re.ASCII)
ADDON_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+\Z", re.ASCII)
ENDPOINT_URL_RE = re.compile(r"^https?://[^\s/]+(:\d+)?/?\Z", re.ASCII)
BROWSER_URL_RE = re.compile(r"^https?://[^\s/$]+(:\d+)?(/[^\s$]*)?\Z", re.ASCII)
# ECR pull-through cache credentials: a Secrets Manager secret whose name starts with ecr-pullthroughcache/
# (CreatePullThroughCacheRule's credentialArn pattern).
PULL_THROUGH_SECRET_RE = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d):\d{12}:"
                                    r"secret:ecr-pullthroughcache/[\w/+=.@-]+\Z", re.ASCII)
# Job arguments end up in a shell command and in Terraform JSON: plain tokens only (no quotes, spaces, ${}).
JOB_ARG_RE = re.compile(r"^[\w./:=@+,%-]+\Z", re.ASCII)

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
GPU_AMI_TYPES = ("AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA",
                 "BOTTLEROCKET_ARM_64_NVIDIA")
# CodeBuild's Linux EC2 compute types (2XLARGE: 824 GB SSD, Docker images up to 100 GB).
CODEBUILD_COMPUTE_TYPES = ("BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE",
                           "BUILD_GENERAL1_XLARGE", "BUILD_GENERAL1_2XLARGE")
CPU_AMI_TYPES = ("AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD", "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64")


def _cidr(value: str) -> str:
    # IPv4 only: the VPC, its subnets and the API's public CIDRs are IPv4 here (an IPv6 network would also break
    # the subnet arithmetic with a TypeError instead of an error line).
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError:
        raise ValueError(f"must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set, got {value!r}") from None


def _vpc_cidr(value: str) -> str:
    value = _cidr(value)
    if not 16 <= ipaddress.ip_network(value).prefixlen <= 24:
        raise ValueError(f"must be a /16 to /24 network (AWS VPC limits), got {value}")
    return value


def _label_key_ok(key: str) -> bool:
    """A Kubernetes label key: [DNS subdomain prefix/]name (the regex alone lets a prefix have empty labels)."""
    prefix, _, _ = key.rpartition("/")
    return bool(LABEL_KEY_RE.match(key)) and all(DNS_LABEL_RE.match(p) for p in prefix.split(".") if prefix)


def _labels(value: dict[str, str]) -> dict[str, str]:
    for k, v in value.items():
        if not _label_key_ok(k) or not LABEL_VALUE_RE.match(str(v)):
            raise ValueError(f"{k}={v!r} is not a valid Kubernetes label "
                             "(keys like usage, values up to 63 [A-Za-z0-9-_.])")
    return value


AWS_MAX_TAGS = 50  # per resource (EKS, EC2, S3...)
USER_MAX_TAGS = 40  # of those, the config's own: the rest are ours (deployment, cluster-autoscaler)


def _tags(value: dict[str, str]) -> dict[str, str]:
    if len(value) > USER_MAX_TAGS:
        raise ValueError(f"at most {USER_MAX_TAGS} tags (AWS allows {AWS_MAX_TAGS} per resource; we add our own)")
    for k, v in value.items():
        if k.lower().startswith("aws:") or not TAG_KEY_RE.match(k) or not TAG_VALUE_RE.match(v):
            raise ValueError(f"{k}={v!r} is not a valid AWS tag (key 1-128, value 0-256 of letters, digits, spaces "
                             "and _.:/=+-@; no aws: prefix)")
    return value


def _deployment_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(f"must be 3-32 lowercase letters, digits or '-', starting with a letter, got {value!r}")
    reserved = next((p for p in S3_RESERVED_PREFIXES if value.startswith(p)), None)
    if reserved:
        raise ValueError(f"must not start with {reserved} (S3 reserves it, and bucket names begin with the name), "
                         f"got {value!r}")
    return value


def _unique_principals(values: list[str]) -> list[str]:
    # EKS allows one access entry per principal: a repeat would fail at apply with 409 ResourceInUseException.
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"lists {', '.join(repeated)} more than once (one access entry per principal)")
    return values


def _unique(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat an item")
    return values


def _catalogued(values: list[str]) -> list[str]:
    """Only instance types the catalogue (config/instance_types.yaml) knows: node-fit validation needs their sizes."""
    from .instances import families, lookup, sizes

    for v in values:
        if lookup(v) is None:
            family = v.split(".", 1)[0]
            known = (f"{family} comes in {', '.join(sizes(family))}" if family in families()
                     else f"families: {', '.join(families())}")
            raise ValueError(f"must be instance types of the catalogue (config/instance_types.yaml; {known}), "
                             f"got {v!r}")
    return values


def _job_args(values: list[str]) -> list[str]:
    for a in values:
        if not JOB_ARG_RE.match(str(a)):
            raise ValueError(f"must be plain tokens of letters, digits and ._/:=@+,%- (no spaces, quotes or ${{}}), "
                             f"got {a!r}")
    return [str(a) for a in values]


# ------------------------------------------------------------------------------------------- types
Cidr = Annotated[str, AfterValidator(_cidr)]
VpcCidr = Annotated[str, AfterValidator(_vpc_cidr)]
RetentionDays = Annotated[int, _rule(lambda v: v in LOG_RETENTION_DAYS,
                                     f"must be one of the CloudWatch retention periods {LOG_RETENTION_DAYS}, "
                                     "got {v}")]
DnsLabel = Annotated[str, _rule(
    lambda v: DNS_LABEL_RE.match(v) and len(v) <= 40,
    "must be a DNS label of at most 40 characters (lowercase letters, digits, '-'), got {v!r}")]
# A namespace this deployment creates: not one every cluster already has.
EXISTING_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
Namespace = Annotated[DnsLabel, _rule(lambda v: v not in EXISTING_NAMESPACES,
                                      f"must not be one of {', '.join(EXISTING_NAMESPACES)} (every cluster has them; "
                                      f"the stacks create their namespace), got {{v!r}}")]
# A RayCluster's name: KubeRay requires a DNS-1035 label (it starts with a letter).
RayClusterName = Annotated[DnsLabel, _rule(lambda v: v[:1].isalpha(),
                                           "must start with a letter (KubeRay requires a DNS-1035 name), got {v!r}")]
CpuQuantity = Annotated[str, BeforeValidator(str),
                        _rule(lambda v: CPU_QUANTITY_RE.match(v),
                              "must be a Kubernetes CPU quantity such as 4 or 500m, got {v!r}")]
MemoryQuantity = Annotated[str, _rule(lambda v: MEMORY_QUANTITY_RE.match(v),
                                      "must be a Kubernetes memory quantity such as 16Gi, got {v!r}")]
Region = Annotated[str, _rule(REGION_RE.match, "must be an AWS region such as us-west-2, got {v!r}")]
AvailabilityZones = Annotated[list[str], _each(AZ_RE.match, "must be AZ names such as us-west-2a, got {v!r}"),
                              AfterValidator(_unique)]
DeploymentName = Annotated[str, AfterValidator(_deployment_name)]
NodeGroupName = Annotated[str, _rule(
    GROUP_NAME_RE.match, "must be 2-20 lowercase letters, digits or '-', starting with a letter, got {v!r}")]
LabelKey = Annotated[str, _rule(_label_key_ok, "must be a Kubernetes label key such as nvidia.com/gpu, got {v!r}")]
# A taint's value: empty, or a label value (Kubernetes); EKS's CreateNodegroup allows 0-63 characters.
TaintValue = Annotated[str, _rule(LABEL_VALUE_RE.match, "must be empty or up to 63 letters, digits, '-', '_' or '.', "
                                                        "starting and ending with a letter or digit, got {v!r}")]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Tags = Annotated[dict[str, str], AfterValidator(_tags)]
InstanceTypes = Annotated[list[str],
                          _each(INSTANCE_TYPE_RE.match, "must be EC2 instance types such as m6i.2xlarge, got {v!r}"),
                          AfterValidator(_catalogued), AfterValidator(_unique)]
AmiType = Annotated[str, _rule(lambda v: v in GPU_AMI_TYPES + CPU_AMI_TYPES,
                               f"must be one of {', '.join(CPU_AMI_TYPES + GPU_AMI_TYPES)}, got {{v!r}}")]
PrincipalArns = Annotated[list[str], _each(
    PRINCIPAL_ARN_RE.match, "must be IAM role or user ARNs such as arn:aws:iam::123456789012:role/Admin, got {v!r}"),
    AfterValidator(_unique_principals)]
ControlPlaneLogTypes = Annotated[list[str], _each(lambda v: v in CONTROL_PLANE_LOG_TYPES,
                                                  f"must be from {', '.join(CONTROL_PLANE_LOG_TYPES)}, got {{v!r}}")]
EcrRepositoryName = Annotated[str, _rule(lambda v: ECR_NAME_RE.match(v) and 2 <= len(v) <= 256,
                                         "must be a lowercase ECR repository name such as ray-custom, got {v!r}")]
BucketName = Annotated[str, _rule(
    BUCKET_RE.match, "must be a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-'), got {v!r}")]
S3Prefix = Annotated[str, _rule(S3_PREFIX_RE.match,
                                "must be an S3 prefix such as ray/import/ (ending in '/'), got {v!r}")]
VpcId = Annotated[str, _rule(lambda v: re.fullmatch(r"vpc-[0-9a-f]{8,17}", v),
                             "must be a VPC id such as vpc-0123456789abcdef0, got {v!r}")]
SubnetIds = Annotated[list[str], _each(lambda v: re.fullmatch(r"subnet-[0-9a-f]{8,17}", v),
                                       "must be subnet ids such as subnet-0123456789abcdef0, got {v!r}")]
EndpointUrl = Annotated[str, _rule(ENDPOINT_URL_RE.match,
                                   "must be an http(s) URL such as http://127.0.0.1:5000, got {v!r}")]
BrowserUrl = Annotated[str, _rule(BROWSER_URL_RE.match,
                                  "must be an http(s) URL such as http://localhost:3000, got {v!r}"),
                       AfterValidator(lambda v: v.rstrip("/"))]
RayVersion = Annotated[str, _rule(RAY_VERSION_RE.match, "must be a Ray 2.x release such as 2.58.0, got {v!r}")]
ImageRef = Annotated[str, _rule(lambda v: IMAGE_RE.match(v) and "ray-ml" not in v,
                                "must be a container image reference (not the frozen rayproject/ray-ml), got {v!r}")]
PullThroughSecretArn = Annotated[str, _rule(PULL_THROUGH_SECRET_RE.match,
                                            "must be the ARN of a Secrets Manager secret named "
                                            "ecr-pullthroughcache/... (ECR pull-through cache credentials), got {v!r}")]
CodeBuildComputeType = Literal[CODEBUILD_COMPUTE_TYPES]  # type: ignore[valid-type]
ChartVersion = Annotated[str, _rule(CHART_VERSION_RE.match, "must be a pinned chart version such as 1.2.3, got {v!r}")]
AddonVersion = Annotated[str, _rule(ADDON_VERSION_RE.match,
                                    "must be an EKS add-on version such as v4.4.0-eksbuild.1, got {v!r}")]
JobArgs = Annotated[list[str], AfterValidator(_job_args)]
SfnLogLevel = Literal["ALL", "ERROR", "FATAL", "OFF"]
MetricsScrapeMode = Literal["none", "annotations", "monitors"]
