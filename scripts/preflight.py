"""`make preflight`: will this AWS account take the deployment? Asks AWS, before the first deploy.

    python -m scripts.preflight            # the config of $RAY_EKS_CONFIG (defaults without it), as main.py

With the AWS CLI and your usual credentials (profile, SSO, environment), in the config's region:

- the caller reaches the account (``sts get-caller-identity``);
- EC2 vCPU quotas -- on-demand or spot, per instance class (Standard, G and VT, P) -- against what the node
  groups can scale to: ``max_size`` x the vCPUs of the group's largest instance type
  (``ec2 describe-instance-types``), plus what already runs in the region outside this deployment;
- the Elastic IP quota against the NAT gateways the network needs, plus the addresses already allocated;
- the Availability Zones the network spans (``az_count``, or the ones named) are available to the account
  (``ec2 describe-availability-zones``; config validation checks only a catalogue of the regions' AZs);
- Lambda's concurrency (``lambda get-account-settings``) against what orchestrator.reserved_concurrency reserves:
  AWS refuses a reservation that leaves less than 100 unreserved (a new account has 10 in all);
- CodeBuild's concurrent builds for the image build's compute type (Service Quotas; new accounts may have 0);
- with a Spot node group or pool, the EC2 Spot service-linked role (``iam get-role AWSServiceRoleForEC2Spot``):
  EC2 refuses Spot launches made through its API (Karpenter's CreateFleet) in an account that has never had it;
- every node group's instance types offered in the deployment's AZs, the API tunnel's in its subnet's (the first
  private subnet's; in an existing VPC looked up with ``ec2 describe-subnets``)
  (``ec2 describe-instance-type-offerings``: a type missing in one AZ fails the node group);
- the API access mode can work from this machine: the Session Manager plugin for the tunnel, this machine's
  egress address inside public_access_cidrs, the API's port reachable once the cluster exists;
- a warning when the image build pulls its base image from Docker Hub anonymously;
- the ``configuration_values`` the stacks give EKS add-ons (conventions/eks.py ``ADDON_CONFIGURATION``)
  against the configuration schema EKS publishes for the version that will be installed
  (``eks describe-addon-configuration``): the pinned version, else the one the stack resolves
  (``eks describe-addon-versions``: the newest for the Kubernetes version, or EKS's default where the stack
  leaves the version to EKS). EKS refuses a value its schema does not allow only when the add-on is created,
  minutes into the deploy, after the cluster exists.

New accounts often have 0 vCPUs for G instances and 5 Elastic IPs per region: the GPU group would then fail
to scale, silently, long after the deploy. Each check is one line; a quota that is short ends with the
``aws service-quotas request-service-quota-increase`` command that asks for enough. The exit status is 1 when
anything would fail the deploy (a short quota, a type not offered, an AZ the account lacks, no Spot role, an access
mode that cannot work from here, an add-on's schema rejecting its configuration, AWS unreachable), 2 for a config
problem or a missing AWS CLI, 0 when all is well.
Instances and addresses tagged ``ray-eks/deployment=<name>`` are this deployment's own and are not counted
twice on a re-run. With ``endpoints.url`` set (an emulator), the CLI is pointed there, as the provider is.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import re
import shutil
import socket
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from config import AppConfig
from conventions.api_access import TUNNEL_HOST, TUNNEL_INSTANCE_TYPE
from conventions.eks import ADDON_CONFIGURATION, CONTAINER_INSIGHTS_ADDON, EKS_ADDONS, addon_configuration
from conventions.naming import DEPLOYMENT_TAG

from . import load_config_or_report
from .aws_cli import INSTALL_AWS_CLI, Aws, AwsError

# Service Quotas codes of service ec2 (research notes aws_eks.md section 8; `aws service-quotas
# list-service-quotas --service-code ec2` lists them). The instance quotas count vCPUs.
INSTANCE_QUOTAS = {
    ("ON_DEMAND", "standard"): "L-1216C47A",  # Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances
    ("ON_DEMAND", "g"): "L-DB2E81BA",  # Running On-Demand G and VT instances
    ("ON_DEMAND", "p"): "L-417A185B",  # Running On-Demand P instances
    ("SPOT", "standard"): "L-34B43A08",  # All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests
    ("SPOT", "g"): "L-3819A6DF",  # All G and VT Spot Instance Requests
    ("SPOT", "p"): "L-7212CCBC",  # All P Spot Instance Requests
}
ELASTIC_IP_QUOTA = "L-0263D0A3"  # EC2-VPC Elastic IPs (addresses, not vCPUs)
# Lambda "Concurrent executions" (per region); AWS keeps at least this many unreserved.
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"
LAMBDA_MIN_UNRESERVED = 100
# CodeBuild "Concurrently running builds for Linux/<size> environment", per compute type (Service Quotas, service
# codebuild).
CODEBUILD_QUOTAS = {
    "BUILD_GENERAL1_SMALL": "L-9D07B6EF",
    "BUILD_GENERAL1_MEDIUM": "L-2DC20C30",
    "BUILD_GENERAL1_LARGE": "L-4DDC4A99",
    "BUILD_GENERAL1_XLARGE": "L-04E5CA62",
    "BUILD_GENERAL1_2XLARGE": "L-0397D009",
}
# Where preflight learns this machine's address on the internet (AWS's own service; plain text). Tests point it at
# a local server.
CHECKIP_URL = os.environ.get("RAY_EKS_CHECKIP_URL", "https://checkip.amazonaws.com")
# Docker Hub's limit for anonymous pulls, per IPv4 address (or IPv6 /64): what CodeBuild's shared addresses share.
DOCKER_HUB_ANONYMOUS_PULLS = "10 pulls per hour per address"
# Families with quotas of their own (Inf, Trn, DL, F, X, HPC, high memory, Mac): not checked here.
UNCHECKED_PREFIXES = ("inf", "trn", "dl", "hpc", "mac", "u-", "u7", "f", "x")


def instance_class(instance_type: str) -> str | None:
    """The quota class of an instance type: ``standard``, ``g`` (G and VT), ``p``; None: not checked here."""
    family = instance_type.split(".", 1)[0]
    if family.startswith(UNCHECKED_PREFIXES):
        return None
    if family.startswith(("g", "vt")):
        return "g"
    if family.startswith("p"):
        return "p"
    if family[0] in "acdhimrtz":
        return "standard"
    return None


@dataclass
class Need:
    """What one quota must hold for the deployment: vCPUs (or addresses) and where they come from."""

    code: str
    amount: int = 0
    parts: list[str] = field(default_factory=list)
    in_use: int = 0


@dataclass
class Check:
    code: str
    name: str
    unit: str
    need: int
    in_use: int
    quota: float
    detail: str
    service: str = "ec2"

    @property
    def ok(self) -> bool:
        return self.need + self.in_use <= self.quota

    @property
    def desired(self) -> int:
        return self.need + self.in_use


def vcpu_needs(cfg: AppConfig, vcpus: dict[str, int]) -> tuple[dict[str, Need], list[str]]:
    """Per quota code: the vCPUs the node groups reach at max_size on their largest instance type.

    Returns the needs and the groups' instance types no quota here covers."""
    needs: dict[str, Need] = {}
    unchecked = []
    for g in cfg.cluster.node_groups:
        by_class: dict[str, list[str]] = {}
        for t in g.instance_types:
            cls = instance_class(t)
            if cls is None:
                unchecked.append(f"{g.name}: {t}")
            else:
                by_class.setdefault(cls, []).append(t)
        # SPOT_OR_ON_DEMAND (a Karpenter pool): Spot, or all of it On-Demand when Spot has none -- both quotas.
        markets = ("SPOT", "ON_DEMAND") if g.capacity_type == "SPOT_OR_ON_DEMAND" else (g.capacity_type,)
        for cls, types in by_class.items():
            # The autoscaler may launch any of the group's types: size for the largest (a Karpenter pool's limits
            # hold max_size of those in vCPUs, whatever mix of its types it launches).
            largest = max(types, key=lambda t: vcpus[t])
            for market in markets:
                code = INSTANCE_QUOTAS[(market, cls)]
                need = needs.setdefault(code, Need(code))
                need.amount += g.max_size * vcpus[largest]
                need.parts.append(f"{g.name}: {g.max_size} x {largest} ({vcpus[largest]} vCPUs)")
    return needs, unchecked


def zone_problem(cfg: AppConfig, zones: list[str]) -> str | None:
    """Why the network cannot span the AZs it asks for in this account (None: it can). ``zones``: the region's
    available Availability Zones as the account sees them (config validation checks a catalogue, an upper bound)."""
    net = cfg.network
    if net.existing is not None:
        return None
    if net.availability_zones:
        missing = [z for z in net.availability_zones if z not in zones]
        if missing:
            return (f"network.availability_zones: {', '.join(missing)} is not available to this account in "
                    f"{cfg.region} (it has {', '.join(zones)})")
    elif net.az_count > len(zones):
        return (f"network.az_count: {net.az_count} AZs, and this account has {len(zones)} in {cfg.region} "
                f"({', '.join(zones)}): set az_count to at most {len(zones)}")
    return None


def live_zones(aws: Aws) -> list[str]:
    """The region's Availability Zones open to the account (no Local or Wavelength Zones, none to opt into)."""
    out = aws("ec2", "describe-availability-zones", "--filters", "Name=zone-type,Values=availability-zone",
              "Name=opt-in-status,Values=opt-in-not-required", "Name=state,Values=available")
    return sorted(z["ZoneName"] for z in out.get("AvailabilityZones", []))


def availability_zones(cfg: AppConfig, aws: Aws) -> list[Finding]:
    """The AZs the network asks for are open to the account (none asked of an existing VPC: its subnets decide)."""
    if cfg.network.existing is not None:
        return []
    problem = zone_problem(cfg, live_zones(aws))
    if problem:
        return [Finding("NO AZ", problem)]
    return [Finding("ok", f"Availability Zones: the network's {cfg.network.zone_count} are available to this account")]


def nat_gateways(cfg: AppConfig) -> int:
    """The NAT gateways (one Elastic IP each) the network creates; none in an existing VPC."""
    if cfg.network.existing:
        return 0
    return 1 if cfg.network.single_nat_gateway else cfg.network.zone_count


class PreflightAws(Aws):
    """The CLI plus Service Quotas' answer for a quota."""

    def quota(self, code: str, service: str = "ec2") -> tuple[float, str]:
        """A quota's applied value, else AWS's default (GetServiceQuota has no applied value for some quotas)."""
        try:
            q = self("service-quotas", "get-service-quota", "--service-code", service, "--quota-code", code)["Quota"]
        except AwsError as e:
            if "NoSuchResource" not in str(e):
                raise
            q = self("service-quotas", "get-aws-default-service-quota", "--service-code", service,
                     "--quota-code", code)["Quota"]
        return float(q["Value"]), str(q.get("QuotaName") or code)

    def vcpus(self, types: set[str]) -> dict[str, int]:
        if not types:
            return {}
        out = self("ec2", "describe-instance-types", "--instance-types", *sorted(types))
        found = {t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"]) for t in out.get("InstanceTypes", [])}
        missing = sorted(types - set(found))
        if missing:
            raise AwsError(f"instance types not offered in {self.region}: {', '.join(missing)}")
        return found


def _ours(resource: dict, name: str) -> bool:
    return any(t.get("Key") == DEPLOYMENT_TAG and t.get("Value") == name for t in resource.get("Tags") or [])


def vcpus_in_use(aws: PreflightAws, name: str) -> dict[str, int]:
    """vCPUs of the pending and running instances per quota code, this deployment's own left out."""
    out = aws("ec2", "describe-instances", "--filters", "Name=instance-state-name,Values=pending,running")
    instances = [i for r in out.get("Reservations", []) for i in r.get("Instances", []) if not _ours(i, name)]
    vcpus = aws.vcpus({i["InstanceType"] for i in instances if instance_class(i["InstanceType"])})
    used: dict[str, int] = {}
    for i in instances:
        cls = instance_class(i["InstanceType"])
        if cls is None:
            continue
        market = "SPOT" if i.get("InstanceLifecycle") == "spot" else "ON_DEMAND"
        code = INSTANCE_QUOTAS[(market, cls)]
        used[code] = used.get(code, 0) + vcpus[i["InstanceType"]]
    return used


def run_checks(cfg: AppConfig, aws: PreflightAws) -> tuple[list[Check], list[str]]:
    vcpus = aws.vcpus({t for g in cfg.cluster.node_groups for t in g.instance_types if instance_class(t)})
    needs, unchecked = vcpu_needs(cfg, vcpus)
    nats = nat_gateways(cfg)
    codes = [*needs, *([ELASTIC_IP_QUOTA] if nats else [])]
    # Independent calls, each a CLI process that takes a second or two to start: run them side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        quotas = {code: pool.submit(aws.quota, code) for code in codes}
        used = pool.submit(vcpus_in_use, aws, cfg.name) if needs else None
        addresses = pool.submit(aws, "ec2", "describe-addresses") if nats else None
        checks = []
        for code, need in needs.items():
            value, qname = quotas[code].result()
            checks.append(Check(code, qname, "vCPUs", need.amount, used.result().get(code, 0) if used else 0, value,
                                "; ".join(need.parts)))
        if addresses is not None:
            value, qname = quotas[ELASTIC_IP_QUOTA].result()
            others = sum(not _ours(a, cfg.name) for a in addresses.result().get("Addresses", []))
            checks.append(Check(ELASTIC_IP_QUOTA, qname, "Elastic IPs", nats, others, value,
                                f"one per NAT gateway: {nats}"))
    return checks, unchecked


# ------------------------------------------------------------------------------------------- add-on configuration
@dataclass(frozen=True)
class AddonToCheck:
    """An add-on the stacks configure, and how the version EKS installs is chosen."""

    name: str
    values: dict
    pinned: str | None
    most_recent: bool  # unpinned: the newest version for the Kubernetes version (else EKS's default version)
    pin_field: str  # the config field that pins its version


def addons_to_check(cfg: AppConfig) -> list[AddonToCheck]:
    """The configured add-ons of this deployment, as the stacks install them: the infra stack's (pinned in
    cluster.addon_versions, else data.aws_eks_addon_version most_recent) and, with Container Insights, the ray
    stack's (observability.container_insights_addon_version, else no version: EKS's default)."""
    out = [AddonToCheck(n, ADDON_CONFIGURATION[n], cfg.cluster.addon_versions.get(n), True,
                        f"cluster.addon_versions.{n}") for n in EKS_ADDONS if n in ADDON_CONFIGURATION]
    if cfg.observability.container_insights:
        values = addon_configuration(CONTAINER_INSIGHTS_ADDON, dcgm_exporter=cfg.observability.dcgm_exporter)
        out.append(AddonToCheck(CONTAINER_INSIGHTS_ADDON, values or {},
                                cfg.observability.container_insights_addon_version, False,
                                "observability.container_insights_addon_version"))
    return out


def schema_problems(values: dict, schema: dict) -> list[str]:
    """What the add-on's configuration schema rejects in ``values``: the key (dotted path) and why. Raises
    jsonschema's SchemaError when ``schema`` is not a valid JSON schema."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator_cls.check_schema(schema)
    out = []
    for e in sorted(validator_cls(schema).iter_errors(values), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(map(str, e.absolute_path))
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            known = (e.schema.get("properties") or {}) if isinstance(e.schema, dict) else {}
            patterns = (e.schema.get("patternProperties") or {}) if isinstance(e.schema, dict) else {}
            for key in sorted(k for k in e.instance if k not in known
                              and not any(re.search(p, k) for p in patterns)):
                out.append(f"{path + '.' if path else ''}{key}: not a key of the add-on's schema")
        else:
            out.append(f"{path or '(top level)'}: {e.message}")
    return out


@dataclass
class AddonCheck:
    addon: AddonToCheck
    version: str
    problems: list[str]

    @property
    def how(self) -> str:
        if self.addon.pinned:
            return "pinned"
        return "newest for the cluster's Kubernetes version" if self.addon.most_recent else "EKS default"


def addon_version(aws: PreflightAws, addon: AddonToCheck, kubernetes_version: str) -> str:
    """The version EKS installs: the pinned one; else what the provider's aws_eks_addon_version resolves with
    most_recent (the first version EKS lists for the Kubernetes version); else what CreateAddon installs without a
    version: the one marked default for this Kubernetes version (each version lists its compatibilities with
    every cluster version, and the default differs between them)."""
    if addon.pinned:
        return addon.pinned
    out = aws("eks", "describe-addon-versions", "--addon-name", addon.name, "--kubernetes-version", kubernetes_version)
    for a in out.get("addons") or []:
        for v in a.get("addonVersions") or []:
            if not v.get("addonVersion"):
                continue
            if addon.most_recent or any(c.get("defaultVersion") and c.get("clusterVersion") == kubernetes_version
                                        for c in v.get("compatibilities") or []):
                return str(v["addonVersion"])
    which = "" if addon.most_recent else "default "
    raise AwsError(f"EKS offers no {which}version of add-on {addon.name} for Kubernetes {kubernetes_version}")


NO_SCHEMA = "EKS publishes no configuration schema for this version: it takes no configuration_values"


def check_addon(aws: PreflightAws, addon: AddonToCheck, kubernetes_version: str) -> AddonCheck:
    import jsonschema

    version = addon_version(aws, addon, kubernetes_version)
    out = aws("eks", "describe-addon-configuration", "--addon-name", addon.name, "--addon-version", version)
    text = out.get("configurationSchema")
    if not text:  # an add-on version without a schema: EKS refuses any configuration
        return AddonCheck(addon, version, [NO_SCHEMA])
    try:
        schema = json.loads(text)
        if not isinstance(schema, dict):
            raise ValueError(f"a JSON {type(schema).__name__}, not an object")
        problems = schema_problems(addon.values, schema)
    except (ValueError, re.error, jsonschema.exceptions.SchemaError, jsonschema.exceptions.UnknownType) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AwsError(f"aws eks describe-addon-configuration: the configuration schema of add-on {addon.name} "
                       f"{version} is not a usable JSON schema ({first})") from None
    return AddonCheck(addon, version, problems)


def _flat_keys(values: dict, prefix: str = "") -> list[str]:
    """Dotted paths of a configuration down to its leaves' parents (a nodeSelector is one key: its keys are ours)."""
    out = []
    for k, v in values.items():
        if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            out += _flat_keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


def request_command(check: Check, region: str) -> str:
    return (f"aws service-quotas request-service-quota-increase --region {region} --service-code {check.service} "
            f"--quota-code {check.code} --desired-value {check.desired}")


# ------------------------------------------------------------------------------------------- a new account's limits
@dataclass(frozen=True)
class Finding:
    """One line of the report: ``ok``, ``note`` and ``warn`` pass; anything else fails the preflight."""

    status: str
    text: str

    @property
    def fails(self) -> bool:
        return self.status not in ("ok", "note", "warn")

    def __str__(self) -> str:
        return f"{self.status:<5} {self.text}"


def lambda_concurrency(cfg: AppConfig, aws: PreflightAws) -> Finding | None:
    """The orchestrator's reservation against the account's concurrency: AWS keeps 100 unreserved."""
    if not cfg.orchestrator_enabled:
        return None
    limit = aws("lambda", "get-account-settings").get("AccountLimit") or {}
    total, unreserved = int(limit.get("ConcurrentExecutions", 0)), int(limit.get("UnreservedConcurrentExecutions", 0))
    reserve = cfg.orchestrator.reserved_concurrency
    name = f"Lambda Concurrent executions ({LAMBDA_CONCURRENCY_QUOTA})"
    if reserve is None:
        return Finding("ok", f"{name}: the orchestrator reserves none (orchestrator.reserved_concurrency: null) and "
                             f"draws on the {unreserved} unreserved of {total}")
    need = (total - unreserved) + reserve + LAMBDA_MIN_UNRESERVED
    check = Check(LAMBDA_CONCURRENCY_QUOTA, "Concurrent executions", "executions", need, 0, total, "",
                  service="lambda")
    if unreserved - reserve >= LAMBDA_MIN_UNRESERVED:
        return Finding("ok", f"{name}: orchestrator.reserved_concurrency {reserve} leaves {unreserved - reserve} of "
                             f"{total} unreserved (AWS keeps {LAMBDA_MIN_UNRESERVED})")
    return Finding("SHORT", f"{name}: orchestrator.reserved_concurrency {reserve} needs {need} (AWS keeps "
                            f"{LAMBDA_MIN_UNRESERVED} unreserved; {total - unreserved} reserved already), quota "
                            f"{total}; request: {request_command(check, cfg.region)} (or set "
                            f"orchestrator.reserved_concurrency: null)")


def codebuild_builds(cfg: AppConfig, aws: PreflightAws) -> Finding | None:
    """The image build needs one concurrent build of its compute type."""
    if cfg.ray.image.source != "build":
        return None
    compute = cfg.ray.image.build_compute_type
    code = CODEBUILD_QUOTAS[compute]
    value, qname = aws.quota(code, service="codebuild")
    check = Check(code, qname, "builds", 1, 0, value, "", service="codebuild")
    text = (f"{qname} ({code}): the image build (ray.image.build_compute_type {compute}) needs 1, quota "
            f"{math.floor(value)}")
    if check.ok:
        return Finding("ok", text)
    return Finding("SHORT", f"{text}; request: {request_command(check, cfg.region)}")


# EC2's service-linked role for Spot: an account that has never launched Spot lacks it, and Spot requests through
# the API (EC2 Fleet: Karpenter) then fail with AuthFailure.ServiceLinkedRoleCreationNotPermitted unless the caller
# may create it. Karpenter's getting-started creates it first (aws/karpenter-provider-aws v1.14.1
# website/content/en/preview/getting-started/getting-started-with-karpenter/scripts/step06-add-spot-role.sh,
# troubleshooting.md "Missing Service Linked Role").
SPOT_ROLE = "AWSServiceRoleForEC2Spot"
CREATE_SPOT_ROLE = "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com"


def spot_role(cfg: AppConfig, aws: PreflightAws) -> Finding | None:
    """With any Spot node group (SPOT or SPOT_OR_ON_DEMAND), the account must have the Spot service-linked role."""
    spot = [g.name for g in cfg.cluster.node_groups if g.capacity_type in ("SPOT", "SPOT_OR_ON_DEMAND")]
    if not spot:
        return None
    who = f"node group{'s' * (len(spot) > 1)} {', '.join(spot)}"
    try:
        aws("iam", "get-role", "--role-name", SPOT_ROLE)
    except AwsError as e:
        if "NoSuchEntity" not in str(e):
            raise
        return Finding("NO ROLE", f"EC2 Spot service-linked role {SPOT_ROLE}: missing, and Spot launches ({who}) "
                                  f"need it; create it once per account: {CREATE_SPOT_ROLE}")
    return Finding("ok", f"EC2 Spot service-linked role {SPOT_ROLE}: present (Spot: {who})")


def deployment_azs(cfg: AppConfig, aws: PreflightAws) -> list[str]:
    """The AZs the node groups span, in the order of the private subnets the stacks put in them: the configured
    ones, the existing VPC's private subnets' (looked up: its first subnet's AZ first), or the first az_count of the
    region's (opt-in not required, by name). The first is the first private subnet's, where the API tunnel lands."""
    net = cfg.network
    if net.existing:
        ids = net.existing.private_subnet_ids
        out = aws("ec2", "describe-subnets", "--subnet-ids", *ids)
        zone = {s["SubnetId"]: s["AvailabilityZone"] for s in out.get("Subnets", [])}
        missing = [i for i in ids if i not in zone]
        if missing:
            raise AwsError(f"aws ec2 describe-subnets: no subnet {', '.join(missing)} in {cfg.region} "
                           f"(network.existing.private_subnet_ids)")
        return list(dict.fromkeys(zone[i] for i in ids))
    if net.availability_zones:
        return list(net.availability_zones)
    out = aws("ec2", "describe-availability-zones", "--filters", "Name=opt-in-status,Values=opt-in-not-required")
    return sorted(z["ZoneName"] for z in out.get("AvailabilityZones", []))[: net.az_count]


def instance_offerings(cfg: AppConfig, aws: PreflightAws) -> list[Finding]:
    """Each node group's types in every AZ of the deployment; the tunnel's type in the first private subnet's AZ
    (stacks/infra.py puts the instance in private_subnet_ids[0])."""
    azs = deployment_azs(cfg, aws)
    wanted: dict[str, list[tuple[str, list[str]]]] = {}  # type -> [(who, azs)]
    for g in cfg.cluster.node_groups:
        for t in g.instance_types:
            wanted.setdefault(t, []).append((f"node group {g.name}", azs))
    tunnel = "the API tunnel"
    if cfg.cluster.endpoint_access == "tunnel" and azs:
        wanted.setdefault(TUNNEL_INSTANCE_TYPE, []).append((tunnel, azs[:1]))
    out = aws("ec2", "describe-instance-type-offerings", "--location-type", "availability-zone",
              "--filters", f"Name=instance-type,Values={','.join(sorted(wanted))}")
    offered: dict[str, set[str]] = {}
    for o in out.get("InstanceTypeOfferings", []):
        offered.setdefault(o["InstanceType"], set()).add(o["Location"])
    existing = cfg.network.existing
    findings = []
    for t, users in wanted.items():
        for who, zones in users:
            missing = [z for z in zones if z not in offered.get(t, set())]
            if missing:
                where = ", ".join(sorted(offered.get(t, set()))) or f"no AZ of {cfg.region}"
                if existing is None:
                    fix = "choose network.availability_zones among those"
                elif who == tunnel:
                    fix = (f"list first in network.existing.private_subnet_ids a subnet in one of those (the tunnel "
                           f"lands in the first, {existing.private_subnet_ids[0]})")
                else:
                    fix = "give network.existing.private_subnet_ids in those AZs only"
                findings.append(Finding("NOT OFFERED", f"{t} ({who}) in {', '.join(missing)}: AWS offers it in "
                                                       f"{where}; {fix} (or another instance type)"))
    if not findings:
        findings.append(Finding("ok", f"instance types offered in the deployment's AZs ({', '.join(sorted(azs))}): "
                                      f"{', '.join(sorted(wanted))}"))
    return findings


def docker_hub(cfg: AppConfig) -> Finding | None:
    if cfg.ray.image.source != "build" or cfg.ray.image.docker_hub_secret_arn:
        return None
    return Finding("warn", f"the image build pulls {cfg.stock_ray_image} from Docker Hub anonymously, from "
                           f"CodeBuild's shared addresses ({DOCKER_HUB_ANONYMOUS_PULLS}; the build retries with "
                           f"backoff): set ray.image.docker_hub_secret_arn to pull with your credentials "
                           f"(docs/deploy.md, \"Docker Hub\")")


# ------------------------------------------------------------------------------------------- the API from here
def egress_address(url: str = CHECKIP_URL, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return str(ipaddress.ip_address(r.read().decode().strip()))


def _reachable(host: str, port: int, timeout: float = 5) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def endpoint_access(cfg: AppConfig, aws: PreflightAws) -> list[Finding]:
    """Can this machine reach the API the way the config says it will?"""
    c = cfg.cluster
    findings = []
    if c.endpoint_access == "tunnel":
        from .tunnel import INSTALL_PLUGIN, PLUGIN, read_session

        plugin = shutil.which(PLUGIN)
        findings.append(Finding("ok", f"{PLUGIN} is installed ({plugin}): `make tunnel` can forward the API") if plugin
                        else Finding("FAIL", f"{PLUGIN} is not on PATH, so `make tunnel` cannot reach the private "
                                             f"API: {INSTALL_PLUGIN}"))
        port = c.tunnel_local_port
        if read_session(cfg) is None and _reachable(TUNNEL_HOST, port, timeout=1) is None:
            findings.append(Finding("FAIL", f"{TUNNEL_HOST}:{port} (cluster.tunnel_local_port) is in use by another "
                                            f"program: stop it or choose another port"))
    if c.endpoint_access == "public" and c.public_access_cidrs:
        try:
            me = egress_address()
        except (OSError, ValueError) as e:
            findings.append(Finding("warn", f"cannot learn this machine's address on the internet from {CHECKIP_URL} "
                                            f"({e}): check that it is inside cluster.public_access_cidrs"))
        else:
            cidrs = ", ".join(c.public_access_cidrs)
            if any(ipaddress.ip_address(me) in ipaddress.ip_network(n) for n in c.public_access_cidrs):
                findings.append(Finding("ok", f"this machine's egress address {me} is inside "
                                              f"cluster.public_access_cidrs ({cidrs})"))
            else:
                findings.append(Finding("FAIL", f"this machine's egress address {me} is outside "
                                                f"cluster.public_access_cidrs ({cidrs}): add {me}/32 to it"))
    try:
        cluster = aws("eks", "describe-cluster", "--name", cfg.name)["cluster"]
    except AwsError as e:
        if "ResourceNotFound" not in str(e):
            raise
        findings.append(Finding("note", "the cluster does not exist yet: the API's port is checked from here once it "
                                        "does (`make tunnel` checks the tunnel)"))
        return findings
    host = urlsplit(str(cluster.get("endpoint", ""))).hostname or ""
    if c.endpoint_access == "tunnel":
        return findings  # only the tunnel's port-forward reaches it: `make tunnel` proves it
    problem = _reachable(host, 443)
    if problem is None:
        findings.append(Finding("ok", f"the Kubernetes API {host}:443 answers from this machine"))
    else:
        fix = ("connect to a network of cluster.private_access_cidrs (VPN, peering)" if c.endpoint_access == "private"
               else "check cluster.public_access_cidrs and your network's egress")
        findings.append(Finding("FAIL", f"the Kubernetes API {host}:443 is not reachable from this machine "
                                        f"({problem}): {fix}"))
    return findings


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    cfg = load_config_or_report()
    if cfg is None:
        return 2
    try:
        import jsonschema  # noqa: F401 -- the preflight category of the Pipfile
    except ImportError:
        print("error: preflight needs jsonschema (the Pipfile's preflight category): run `make preflight`",
              file=sys.stderr)
        return 2
    if not Aws.installed():
        print(f"error: the AWS CLI (aws) is not on PATH: {INSTALL_AWS_CLI}", file=sys.stderr)
        return 2
    aws = PreflightAws(cfg)
    try:
        me = aws.caller()
    except AwsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"preflight: deployment {cfg.name} in {cfg.region}, account {me.get('Account')}, as {me.get('Arn')}")
    if cfg.cluster.creator_is_admin:
        print("  this principal gets cluster admin (cluster.creator_is_admin: true)")
    try:
        # Independent calls, each a CLI process that takes a second or two to start: run them side by side.
        with ThreadPoolExecutor(max_workers=4) as pool:
            addons = [pool.submit(check_addon, aws, a, cfg.cluster.kubernetes_version) for a in addons_to_check(cfg)]
            account = [pool.submit(f, cfg, aws) for f in (lambda_concurrency, codebuild_builds, spot_role)]
            offerings = pool.submit(instance_offerings, cfg, aws)
            access = pool.submit(endpoint_access, cfg, aws)
            checks, unchecked = run_checks(cfg, aws)
            addon_checks = [f.result() for f in addons]
            zones = pool.submit(availability_zones, cfg, aws)
            findings = ([f for f in (x.result() for x in account) if f] + zones.result() + offerings.result()
                        + access.result())
    except AwsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    quotas = []
    for c in checks:
        line = (f"{c.name} ({c.code}): {c.need} {c.unit} needed [{c.detail}], {c.in_use} in use outside this "
                f"deployment, quota {math.floor(c.quota)}")
        quotas.append(Finding("ok", line) if c.ok else
                      Finding("SHORT", f"{line}; request: {request_command(c, cfg.region)}"))
    findings = quotas + findings
    for t in unchecked:
        findings.append(Finding("note", f"{t} has an instance quota of its own that preflight does not check: see "
                                        f"`aws service-quotas list-service-quotas --service-code ec2 --region "
                                        f"{cfg.region}`"))
    hub = docker_hub(cfg)
    if hub:
        findings.append(hub)
    for a in addon_checks:
        if a.problems:
            findings.append(Finding("REJECTED", f"add-on {a.addon.name} {a.version} ({a.how}): "
                                                f"{'; '.join(a.problems)}; pin a version whose schema has the keys: "
                                                f"{a.addon.pin_field}"))
        else:
            findings.append(Finding("ok", f"add-on {a.addon.name} {a.version} ({a.how}): its configuration schema "
                                          f"accepts {', '.join(_flat_keys(a.addon.values))}"))
    for f in findings:
        print(f)
    failed = [f for f in findings if f.fails]
    if failed:
        print(f"preflight: {len(failed)} problem(s) would fail the deploy; quota increases are granted per region "
              f"(GPU requests can take a day or more)")
        return 1
    print("preflight: the account takes the deployment")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
