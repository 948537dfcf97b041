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
- the ``configuration_values`` the stacks give EKS add-ons (conventions/eks.py ``ADDON_CONFIGURATION``)
  against the configuration schema EKS publishes for the version that will be installed
  (``eks describe-addon-configuration``): the pinned version, else the one the stack resolves
  (``eks describe-addon-versions``: the newest for the Kubernetes version, or EKS's default where the stack
  leaves the version to EKS). EKS refuses a value its schema does not allow only when the add-on is created,
  minutes into the deploy, after the cluster exists.

New accounts often have 0 vCPUs for G instances and 5 Elastic IPs per region: the GPU group would then fail
to scale, silently, long after the deploy. Every quota that is short is printed as the
``aws service-quotas request-service-quota-increase`` command that asks for enough; the exit status is 1
then (and when an add-on's schema rejects its configuration, an AZ is not available, or AWS cannot be reached), 2
for a config problem or a missing AWS CLI, 0 when all is well.
Instances and addresses tagged ``ray-eks/deployment=<name>`` are this deployment's own and are not counted
twice on a re-run. With ``endpoints.url`` set (an emulator), the CLI is pointed there, as the provider is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from config import AppConfig, ConfigError, load_config
from conventions.eks import ADDON_CONFIGURATION, CONTAINER_INSIGHTS_ADDON, EKS_ADDONS
from conventions.naming import DEPLOYMENT_TAG

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
# Families with quotas of their own (Inf, Trn, DL, F, X, HPC, high memory, Mac): not checked here.
UNCHECKED_PREFIXES = ("inf", "trn", "dl", "hpc", "mac", "u-", "u7", "f", "x")
AWS_TIMEOUT_S = 120


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


def nat_gateways(cfg: AppConfig) -> int:
    """The NAT gateways (one Elastic IP each) the network creates; none in an existing VPC."""
    if cfg.network.existing:
        return 0
    return 1 if cfg.network.single_nat_gateway else cfg.network.zone_count


class AwsError(Exception):
    pass


class Aws:
    """The AWS CLI, in one region, JSON out. Endpoint and keys from config.endpoints when it names an emulator."""

    def __init__(self, cfg: AppConfig) -> None:
        self.region = cfg.region
        self.env = dict(os.environ)
        self.extra: list[str] = []
        if cfg.endpoints.url:
            self.extra = ["--endpoint-url", cfg.endpoints.url]
            self.env.update(AWS_ACCESS_KEY_ID=cfg.endpoints.access_key, AWS_SECRET_ACCESS_KEY=cfg.endpoints.secret_key)
            self.env.pop("AWS_PROFILE", None)
            self.env.pop("AWS_SESSION_TOKEN", None)

    def __call__(self, service: str, operation: str, *args: str) -> dict:
        cmd = ["aws", service, operation, *args, "--region", self.region, "--output", "json", *self.extra]
        try:
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=AWS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AwsError(f"aws {service} {operation}: no answer within {AWS_TIMEOUT_S}s") from None
        if r.returncode != 0:
            lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
            raise AwsError(f"aws {service} {operation}: {lines[-1] if lines else f'exit {r.returncode}'}")
        return json.loads(r.stdout) if r.stdout.strip() else {}

    def quota(self, code: str) -> tuple[float, str]:
        """A quota's applied value, else AWS's default (GetServiceQuota has no applied value for some quotas)."""
        try:
            q = self("service-quotas", "get-service-quota", "--service-code", "ec2", "--quota-code", code)["Quota"]
        except AwsError as e:
            if "NoSuchResource" not in str(e):
                raise
            q = self("service-quotas", "get-aws-default-service-quota", "--service-code", "ec2",
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


def vcpus_in_use(aws: Aws, name: str) -> dict[str, int]:
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


def run_checks(cfg: AppConfig, aws: Aws) -> tuple[list[Check], list[str]]:
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
        out.append(AddonToCheck(CONTAINER_INSIGHTS_ADDON, ADDON_CONFIGURATION[CONTAINER_INSIGHTS_ADDON],
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


def addon_version(aws: Aws, addon: AddonToCheck, kubernetes_version: str) -> str:
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


def check_addon(aws: Aws, addon: AddonToCheck, kubernetes_version: str) -> AddonCheck:
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
    return (f"aws service-quotas request-service-quota-increase --region {region} --service-code ec2 "
            f"--quota-code {check.code} --desired-value {check.desired}")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    try:
        cfg = load_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        import jsonschema  # noqa: F401 -- the preflight category of the Pipfile
    except ImportError:
        print("error: preflight needs jsonschema (the Pipfile's preflight category): run `make preflight`",
              file=sys.stderr)
        return 2
    if not shutil.which("aws"):
        print("error: the AWS CLI (aws) is not on PATH; install it: https://docs.aws.amazon.com/cli/", file=sys.stderr)
        return 2
    aws = Aws(cfg)
    try:
        me = aws("sts", "get-caller-identity")
    except AwsError as e:
        print(f"error: cannot reach AWS with the current credentials ({e}); check `aws configure list`, "
              "AWS_PROFILE or `aws sso login`", file=sys.stderr)
        return 1
    print(f"preflight: deployment {cfg.name} in {cfg.region}, account {me.get('Account')}, as {me.get('Arn')}")
    if cfg.cluster.creator_is_admin:
        print("  this principal gets cluster admin (cluster.creator_is_admin: true)")
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            addons = [pool.submit(check_addon, aws, a, cfg.cluster.kubernetes_version) for a in addons_to_check(cfg)]
            checks, unchecked = run_checks(cfg, aws)
            addon_checks = [f.result() for f in addons]
            zones = zone_problem(cfg, live_zones(aws))
    except AwsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if zones:
        print(f"NO AZ {zones}")
    elif cfg.network.existing is None:
        print(f"ok    Availability Zones: the network's {cfg.network.zone_count} are available to this account")
    for c in checks:
        status = "ok   " if c.ok else "SHORT"
        print(f"{status} {c.name} ({c.code}): {c.need} {c.unit} needed [{c.detail}], {c.in_use} in use outside "
              f"this deployment, quota {math.floor(c.quota)}")
    for t in unchecked:
        print(f"note  {t} has an instance quota of its own that preflight does not check: see "
              f"`aws service-quotas list-service-quotas --service-code ec2 --region {cfg.region}`")
    for a in addon_checks:
        if a.problems:
            print(f"REJECTED add-on {a.addon.name} {a.version} ({a.how}): {'; '.join(a.problems)}")
        else:
            print(f"ok    add-on {a.addon.name} {a.version} ({a.how}): its configuration schema accepts "
                  f"{', '.join(_flat_keys(a.addon.values))}")
    rejected = [a for a in addon_checks if a.problems]
    if rejected:
        print("\nEKS would refuse these add-ons' configuration when the deploy creates them. Pin a version whose "
              "schema has the keys (`aws eks describe-addon-configuration --addon-name <add-on> --addon-version "
              "<version>` prints it):")
        for a in rejected:
            print(f"  {a.addon.pin_field}")
    short = [c for c in checks if not c.ok]
    if not short:
        print("preflight: all quotas hold the deployment at its node groups' max_size")
        return 1 if rejected or zones else 0
    print("\nRequest these increases before deploying (granted per region; GPU requests can take a day or more):")
    for c in short:
        print(f"  {request_command(c, cfg.region)}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
