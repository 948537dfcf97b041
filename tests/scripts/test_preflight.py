"""scripts/preflight.py (`make preflight`): the quota arithmetic and the add-on configuration check, then the real
CLI -- the AWS CLI against the emulator (tests/deploy/emulator.py serves EC2 quotas in Service Quotas: a new account's
defaults, or applied values; and each add-on's configuration schema: the recorded one, or one given per version) --
as users run it."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from config import AppConfig, load_config, parse_config
from conventions.eks import ADDON_CONFIGURATION
from scripts.preflight import (
    NO_SCHEMA,
    AddonToCheck,
    AwsError,
    addon_version,
    addons_to_check,
    instance_class,
    nat_gateways,
    request_command,
    schema_problems,
    vcpu_needs,
)
from tests.cluster_model.facts import ADDONS_DIR
from tests.helpers import (
    EDGE_PINNED_ADDON,
    ROOT,
    app_env,
    edge_config,
    emulator_server,
    prod_existing_vpc_config,
    stack_items,
)

EXAMPLES = ROOT / "config" / "examples"
VCPUS = {"m6i.xlarge": 4, "m6i.2xlarge": 8, "g5.xlarge": 4, "g5.2xlarge": 8, "g5.4xlarge": 16}


# ------------------------------------------------------------------------------------------- arithmetic
@pytest.mark.parametrize("instance_type,cls", [
    ("m6i.2xlarge", "standard"), ("c7g.large", "standard"), ("t3.medium", "standard"), ("r7i.large", "standard"),
    ("i4i.large", "standard"), ("im4gn.large", "standard"), ("z1d.large", "standard"), ("g5.xlarge", "g"),
    ("g6e.xlarge", "g"), ("gr6.4xlarge", "g"), ("g5g.xlarge", "g"), ("vt1.3xlarge", "g"), ("p4d.24xlarge", "p"),
    ("p5.48xlarge", "p"), ("inf2.xlarge", None), ("trn1.2xlarge", None), ("dl1.24xlarge", None),
    ("x2idn.16xlarge", None), ("f1.2xlarge", None), ("hpc7g.4xlarge", None)])
def test_instance_quota_class(instance_type, cls):
    assert instance_class(instance_type) == cls


def test_default_needs_standard_and_g_vcpus():
    needs, unchecked = vcpu_needs(AppConfig(), VCPUS)
    # core: 4 x m6i.2xlarge; gpu: 4 x g5.xlarge (max_size x vCPUs)
    assert {c: n.amount for c, n in needs.items()} == {"L-1216C47A": 32, "L-DB2E81BA": 16} and not unchecked


def test_group_max_size_and_spot_quotas():
    prod = parse_config(prod_existing_vpc_config())  # gpu: 8 x g5.2xlarge
    assert {c: n.amount for c, n in vcpu_needs(prod, VCPUS)[0].items()} == {"L-1216C47A": 32, "L-DB2E81BA": 8 * 8}
    dev = load_config(str(EXAMPLES / "dev-cpu.yaml"))  # its cpu group is SPOT
    assert {c: n.amount for c, n in vcpu_needs(dev, VCPUS)[0].items()} == {"L-1216C47A": 8, "L-34B43A08": 24}


def test_elastic_ips_per_nat_gateway():
    assert nat_gateways(AppConfig()) == 3
    assert nat_gateways(load_config(str(EXAMPLES / "dev-cpu.yaml"))) == 1
    assert nat_gateways(parse_config(prod_existing_vpc_config())) == 0  # an existing VPC: its NAT is not ours


# ------------------------------------------------------------------------------------------- add-on configuration
# Quotas that hold the default deployment (the add-on tests are about the add-ons): vCPUs and one image build.
ENOUGH = ("--quota", "L-1216C47A=640", "--quota", "L-DB2E81BA=64", "--quota", "L-4DDC4A99=1")


def recorded_schema(addon: str) -> dict:
    return yaml.safe_load((ADDONS_DIR / f"{addon}.yaml").read_text())["configuration_schema"]["schema"]


def test_preflight_checks_the_addons_the_stacks_configure_at_the_versions_they_install(edge_synth):
    """The edge config: Container Insights on (the ray stack's add-on, version left to EKS) and vpc-cni pinned."""
    cfg = parse_config(edge_config())
    planned = {a.name: a for a in addons_to_check(cfg)}
    synthesized = {r["addon_name"]: r for _, stack in stack_items(edge_synth)
                   for r in (stack.get("resource", {}).get("aws_eks_addon") or {}).values()
                   if r.get("configuration_values")}
    assert set(planned) == set(synthesized) == set(ADDON_CONFIGURATION)
    for name, r in synthesized.items():
        a = planned[name]
        assert json.loads(r["configuration_values"]) == a.values, name
        version = r.get("addon_version")
        if a.pinned:
            assert (name, version) == EDGE_PINNED_ADDON
        elif a.most_recent:  # data.aws_eks_addon_version with most_recent = true
            assert version.startswith("${data.aws_eks_addon_version."), (name, version)
        else:  # no version: EKS installs its default
            assert version is None, (name, version)
    assert [n for n, a in planned.items() if not a.most_recent] == ["amazon-cloudwatch-observability"]


@pytest.mark.parametrize("addon,values,problem", [
    ("coredns", {"nodeselector": {"usage": "core"}}, "nodeselector: not a key of the add-on's schema"),  # a typo
    ("coredns", {"nodeSelector": {"usage": 1}}, "nodeSelector.usage: 1 is not of type 'string'"),
    ("vpc-cni", {"enableNetworkPolicy": True}, "enableNetworkPolicy: True is not of type 'string'"),
])
def test_schema_problems_name_the_key(addon, values, problem):
    assert schema_problems(values, recorded_schema(addon)) == [problem]


def test_our_configuration_fits_the_recorded_schemas():
    assert all(schema_problems(v, recorded_schema(a)) == [] for a, v in ADDON_CONFIGURATION.items())


# ------------------------------------------------------------------------------------------- the CLI
def _plugin_dir(tmp: Path) -> Path:
    """A stand-in for the AWS CLI's Session Manager plugin (a binary this machine cannot install): preflight only
    looks for it on PATH."""
    d = tmp / "plugin-bin"
    d.mkdir(exist_ok=True)
    plugin = d / "session-manager-plugin"
    plugin.write_text("#!/bin/sh\necho 1.2.707.0\n")
    plugin.chmod(0o755)
    return d


def preflight(tmp: Path, url: str, plugin: bool = True, env: dict | None = None,
              **config) -> subprocess.CompletedProcess:
    assert shutil.which("aws"), "the AWS CLI must be on PATH (make preflight uses it)"
    path = tmp / "preflight.yaml"
    path.write_text(yaml.safe_dump({"endpoints": {"url": url}, **config}))
    run_env = app_env(config=path, **(env or {}))
    dirs = [d for d in run_env["PATH"].split(":") if not (Path(d) / "session-manager-plugin").exists()]
    run_env["PATH"] = ":".join([str(_plugin_dir(tmp))] * plugin + dirs)
    return subprocess.run([sys.executable, "-m", "scripts.preflight"], cwd=ROOT, env=run_env,
                          capture_output=True, text=True, timeout=300)


def _requests(out: str) -> list[str]:
    return [ln.split("; request: ", 1)[1].split(" (or ", 1)[0] for ln in out.splitlines() if "; request: " in ln]


def _line(out: str, code: str) -> str:
    (line,) = [ln for ln in out.splitlines() if f"({code})" in ln]
    return line


def test_a_new_account_is_told_what_to_request(tmp_path):
    """AWS's values for a new account: 5 standard vCPUs, 0 G vCPUs, 5 Elastic IPs, Lambda concurrency 10, no
    concurrent CodeBuild build. Each limit the config exceeds is one line: the quota, what the config needs, the
    request that raises it."""
    with emulator_server(tmp_path / "emulator.log") as emu:
        r = preflight(tmp_path, emu.url, orchestrator={"reserved_concurrency": 2})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "account 123456789012" in r.stdout
    assert _line(r.stdout, "L-1216C47A").startswith("SHORT") and "32 vCPUs needed" in _line(r.stdout, "L-1216C47A")
    assert _line(r.stdout, "L-DB2E81BA").startswith("SHORT") and "gpu: 4 x g5.xlarge" in _line(r.stdout, "L-DB2E81BA")
    assert _line(r.stdout, "L-0263D0A3").startswith("ok") and "3 Elastic IPs needed" in _line(r.stdout, "L-0263D0A3")
    assert _line(r.stdout, "L-B99A9384") == (
        "SHORT Lambda Concurrent executions (L-B99A9384): orchestrator.reserved_concurrency 2 needs 102 (AWS keeps "
        "100 unreserved; 0 reserved already), quota 10; request: aws service-quotas request-service-quota-increase "
        "--region us-west-2 --service-code lambda --quota-code L-B99A9384 --desired-value 102 (or set "
        "orchestrator.reserved_concurrency: null)")
    assert _line(r.stdout, "L-4DDC4A99") == (
        "SHORT Concurrently running builds for Linux/Large environment (L-4DDC4A99): the image build "
        "(ray.image.build_compute_type BUILD_GENERAL1_LARGE) needs 1, quota 0; request: aws service-quotas "
        "request-service-quota-increase --region us-west-2 --service-code codebuild --quota-code L-4DDC4A99 "
        "--desired-value 1")
    assert _requests(r.stdout) == [
        "aws service-quotas request-service-quota-increase --region us-west-2 --service-code ec2 "
        "--quota-code L-1216C47A --desired-value 32",
        "aws service-quotas request-service-quota-increase --region us-west-2 --service-code ec2 "
        "--quota-code L-DB2E81BA --desired-value 16",
        "aws service-quotas request-service-quota-increase --region us-west-2 --service-code lambda "
        "--quota-code L-B99A9384 --desired-value 102",
        "aws service-quotas request-service-quota-increase --region us-west-2 --service-code codebuild "
        "--quota-code L-4DDC4A99 --desired-value 1"]
    # Without explicit AZs the first az_count of the region, as the stack picks them (us-west-2d is the fourth).
    assert "instance types offered in the deployment's AZs (us-west-2a, us-west-2b, us-west-2c)" in r.stdout



def test_usage_outside_the_deployment_counts_and_its_own_does_not(tmp_path):
    with emulator_server(tmp_path / "emulator.log", *ENOUGH) as emu:
        url, ec2 = emu.url, emu.client("ec2", region="us-west-2")
        ours = [{"ResourceType": "instance", "Tags": [{"Key": "ray-eks/deployment", "Value": "ray-eks"}]}]
        ec2.run_instances(ImageId="ami-12c6146b", InstanceType="g5.4xlarge", MinCount=2, MaxCount=2)  # 32 vCPUs
        ec2.run_instances(ImageId="ami-12c6146b", InstanceType="g5.2xlarge", MinCount=3, MaxCount=3,
                          TagSpecifications=ours)  # this deployment's own: not counted again
        others = [ec2.allocate_address(Domain="vpc")["AllocationId"] for _ in range(3)]
        ec2.allocate_address(Domain="vpc", TagSpecifications=[
            {"ResourceType": "elastic-ip", "Tags": [{"Key": "ray-eks/deployment", "Value": "ray-eks"}]}])

        r = preflight(tmp_path, url)
        assert r.returncode == 1, r.stdout + r.stderr
        g = _line(r.stdout, "L-DB2E81BA")
        assert g.startswith("ok") and "32 in use outside this deployment" in g and "quota 64" in g
        eip = _line(r.stdout, "L-0263D0A3")
        assert eip.startswith("SHORT") and "3 in use outside this deployment" in eip
        assert _requests(r.stdout) == [
            "aws service-quotas request-service-quota-increase --region us-west-2 --service-code ec2 "
            "--quota-code L-0263D0A3 --desired-value 6"]

        for allocation in others:
            ec2.release_address(AllocationId=allocation)
        r = preflight(tmp_path, url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the account takes the deployment" in r.stdout and "SHORT" not in r.stdout


def test_unreachable_aws_and_bad_config(tmp_path):
    with emulator_server(tmp_path / "emulator.log") as emu:
        url = emu.url  # a port nothing listens on any more, once the block ends
    r = preflight(tmp_path, url)
    assert r.returncode == 1 and r.stderr.startswith("error: cannot reach AWS"), r.stdout + r.stderr
    assert len(r.stderr.splitlines()) == 1
    r = preflight(tmp_path, url, region="nowhere")
    assert r.returncode == 2 and r.stderr.splitlines() == [r.stderr.strip()] and "region:" in r.stderr


def test_request_command_asks_for_need_plus_usage():
    from scripts.preflight import Check

    c = Check("L-DB2E81BA", "G", "vCPUs", need=16, in_use=8, quota=4.0, detail="")
    assert not c.ok and c.desired == 24
    assert request_command(c, "eu-west-1").endswith("--region eu-west-1 --service-code ec2 --quota-code L-DB2E81BA "
                                                    "--desired-value 24")


def _addon_lines(out: str) -> dict[str, str]:
    return {ln.split()[2]: ln for ln in out.splitlines() if ln.split()[1:2] == ["add-on"]}


def test_addon_configuration_accepted(tmp_path):
    with emulator_server(tmp_path / "emulator.log", *ENOUGH) as emu:
        r = preflight(tmp_path, emu.url, observability={"container_insights": True})
    assert r.returncode == 0, r.stdout + r.stderr
    lines = _addon_lines(r.stdout)
    assert set(lines) == set(ADDON_CONFIGURATION)
    # The emulator's newest build for the infra stack's add-ons; its default one for Container Insights.
    assert lines["coredns"] == ("ok    add-on coredns v0.0.2-eksbuild.1 (newest for the cluster's Kubernetes "
                                "version): its configuration schema accepts nodeSelector")
    assert "aws-fsx-csi-driver v0.0.2-eksbuild.1" in lines["aws-fsx-csi-driver"]
    assert "controller.nodeSelector" in lines["aws-fsx-csi-driver"]
    assert "v0.0.1-eksbuild.1 (EKS default)" in lines["amazon-cloudwatch-observability"]
    assert all(ln.startswith("ok") for ln in lines.values()), lines


def test_addon_configuration_rejected_fails_preflight_naming_addon_and_key(tmp_path):
    """A coredns version whose schema has no nodeSelector (add-on schemas gain keys from version to version)."""
    old = recorded_schema("coredns")
    old["properties"] = {k: v for k, v in old["properties"].items() if k != "nodeSelector"}
    schema = tmp_path / "coredns-old.json"
    schema.write_text(json.dumps(old))
    with emulator_server(tmp_path / "emulator.log", *ENOUGH,
                         "--addon-schema", f"coredns@v1.9.3-eksbuild.1={schema}") as emu:
        r = preflight(tmp_path, emu.url, cluster={"addon_versions": {"coredns": "v1.9.3-eksbuild.1"}})
        latest = preflight(tmp_path, emu.url)  # the same account, coredns not pinned: the newest version's schema
    assert r.returncode == 1, r.stdout + r.stderr
    lines = _addon_lines(r.stdout)
    assert lines["coredns"] == ("REJECTED add-on coredns v1.9.3-eksbuild.1 (pinned): nodeSelector: not a key of the "
                                "add-on's schema; pin a version whose schema has the keys: "
                                "cluster.addon_versions.coredns")
    assert lines["vpc-cni"].startswith("ok") and lines["aws-fsx-csi-driver"].startswith("ok")
    assert not [ln for ln in r.stdout.splitlines() if ln.startswith("SHORT")]  # the quotas are not what failed
    assert latest.returncode == 0 and _addon_lines(latest.stdout)["coredns"].startswith("ok"), latest.stdout


def test_addon_version_without_a_name_in_the_answer_is_one_error():
    """An answer without usable versions is AWS's problem, said in one line (no KeyError)."""
    addon = AddonToCheck("coredns", {}, None, False, "cluster.addon_versions.coredns")
    for answer in ({}, {"addons": [{"addonVersions": [{"compatibilities": []}]}]},
                   {"addons": [{"addonVersions": [{"addonVersion": "v1", "compatibilities": [
                       {"clusterVersion": "1.33", "defaultVersion": True}]}]}]}):  # the default of another version
        with pytest.raises(AwsError, match="EKS offers no default version of add-on coredns for Kubernetes 1.35"):
            addon_version(lambda *_, answer=answer: answer, addon, "1.35")


def test_an_addon_version_without_a_schema_takes_no_configuration(tmp_path):
    empty = tmp_path / "none.json"
    empty.write_text("")
    with emulator_server(tmp_path / "emulator.log", *ENOUGH,
                         "--addon-schema", f"coredns@v1.8.0-eksbuild.1={empty}") as emu:
        r = preflight(tmp_path, emu.url, cluster={"addon_versions": {"coredns": "v1.8.0-eksbuild.1"}})
    assert r.returncode == 1, r.stdout + r.stderr
    assert _addon_lines(r.stdout)["coredns"] == (
        f"REJECTED add-on coredns v1.8.0-eksbuild.1 (pinned): {NO_SCHEMA}; pin a version whose schema has the keys: "
        f"cluster.addon_versions.coredns")


def test_an_unusable_schema_from_aws_is_one_error_line(tmp_path):
    bogus = tmp_path / "bogus.json"
    bogus.write_text(json.dumps({"type": "bogus"}))
    with emulator_server(tmp_path / "emulator.log", *ENOUGH,
                         "--addon-schema", f"coredns@v1.8.0-eksbuild.1={bogus}") as emu:
        r = preflight(tmp_path, emu.url, cluster={"addon_versions": {"coredns": "v1.8.0-eksbuild.1"}})
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith("error: aws eks describe-addon-configuration: the configuration schema of add-on "
                               "coredns v1.8.0-eksbuild.1 is not a usable JSON schema ("), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


# ------------------------------------------------------------------------------------------- issue 17: a new account
def test_types_not_offered_anonymous_pulls_and_no_plugin_are_each_one_line(emulator, tmp_path):
    """The emulator's offerings are AWS's (moto's recorded data): g5.xlarge is not offered in us-west-2d. The default
    image build pulls from Docker Hub anonymously: a warning. No Session Manager plugin: the tunnel cannot work."""
    r = preflight(tmp_path, emulator.url, plugin=False, network={"availability_zones": ["us-west-2c", "us-west-2d"]})
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("NOT OFFERED")] == [
        "NOT OFFERED g5.xlarge (node group gpu) in us-west-2d: AWS offers it in us-west-2a, us-west-2b, us-west-2c; "
        "choose network.availability_zones among those (or another instance type)"]
    (warn,) = [ln for ln in lines if ln.startswith("warn")]
    assert "pulls rayproject/ray:2.58.0-py311-cu130 from Docker Hub anonymously" in warn
    assert "set ray.image.docker_hub_secret_arn" in warn
    (plugin,) = [ln for ln in lines if "session-manager-plugin" in ln]
    assert plugin.startswith("FAIL  session-manager-plugin is not on PATH, so `make tunnel` cannot reach the private "
                             "API: install the AWS CLI's Session Manager plugin: https://docs.aws.amazon.com/")

    secret = "arn:aws:secretsmanager:us-west-2:123456789012:secret:ecr-pullthroughcache/hub"
    ok = preflight(tmp_path, emulator.url, network={"availability_zones": ["us-west-2a", "us-west-2b"]},
                   ray={"image": {"docker_hub_secret_arn": secret}}).stdout.splitlines()
    assert "ok    instance types offered in the deployment's AZs (us-west-2a, us-west-2b): g5.xlarge, m6i.2xlarge, " \
           "t4g.nano" in ok
    assert not [ln for ln in ok if ln.startswith("warn")]
    assert any(ln.startswith("ok    session-manager-plugin is installed") for ln in ok)


@contextmanager
def _checkip(address: str):
    """A stand-in for checkip.amazonaws.com: answers this machine's address, as plain text."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"{address}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_public_access_needs_this_machines_address_in_the_cidrs(emulator, tmp_path):
    public = {"endpoint_access": "public", "public_access_cidrs": ["1.2.3.0/24"]}
    with _checkip("1.2.3.4") as url:
        inside = preflight(tmp_path, emulator.url, env={"RAY_EKS_CHECKIP_URL": url}, cluster=public)
    with _checkip("5.6.7.8") as url:
        outside = preflight(tmp_path, emulator.url, env={"RAY_EKS_CHECKIP_URL": url}, cluster=public)
    assert "ok    this machine's egress address 1.2.3.4 is inside cluster.public_access_cidrs (1.2.3.0/24)" in \
        inside.stdout.splitlines()
    assert outside.returncode == 1
    assert ("FAIL  this machine's egress address 5.6.7.8 is outside cluster.public_access_cidrs (1.2.3.0/24): add "
            "5.6.7.8/32 to it") in outside.stdout.splitlines()


def test_a_private_api_that_this_machine_cannot_reach_is_one_line(emulator, tmp_path):
    """Once the cluster exists: its endpoint's port from here (the emulator's endpoint name resolves nowhere)."""
    eks = emulator.client("eks", region="us-west-2")
    iam = emulator.client("iam")
    role = iam.create_role(RoleName="preflight-eks", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    eks.create_cluster(name="ray-eks", roleArn=role, resourcesVpcConfig={"subnetIds": []})
    try:
        r = preflight(tmp_path, emulator.url,
                      cluster={"endpoint_access": "private", "private_access_cidrs": ["10.100.0.0/16"]})
    finally:
        eks.delete_cluster(name="ray-eks")
    assert r.returncode == 1
    (line,) = [ln for ln in r.stdout.splitlines() if "Kubernetes API" in ln]
    assert line.startswith("FAIL  the Kubernetes API ") and line.endswith(
        "connect to a network of cluster.private_access_cidrs (VPN, peering)")


# ------------------------------------------------------------------------------------------- Availability Zones
def test_spot_with_on_demand_fallback_needs_both_quotas():
    """A Karpenter pool of SPOT_OR_ON_DEMAND may run all Spot or, when Spot has none, all On-Demand."""
    cfg = load_config(str(EXAMPLES / "karpenter-gpu.yaml"))  # core: 3 x 8, gpu: 4 x up to 32, cpu: 4 x up to 16 vCPUs
    needs = {c: n.amount for c, n in vcpu_needs(cfg, {**VCPUS, "g5.8xlarge": 32, "m6a.2xlarge": 8,
                                                     "m7i.2xlarge": 8, "c6i.4xlarge": 16})[0].items()}
    assert needs == {"L-1216C47A": 3 * 8 + 4 * 16, "L-34B43A08": 4 * 16, "L-DB2E81BA": 4 * 32, "L-3819A6DF": 4 * 32}


def test_zone_problems_name_the_field():
    from scripts.preflight import zone_problem

    four = ["us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"]
    assert zone_problem(AppConfig(), four) is None
    assert zone_problem(AppConfig(), four[:2]) == (
        "network.az_count: 3 AZs, and this account has 2 in us-west-2 (us-west-2a, us-west-2b): set az_count to at "
        "most 2")
    named = parse_config({"network": {"availability_zones": ["us-west-2a", "us-west-2d"]}})
    assert zone_problem(named, four[:3]).startswith("network.availability_zones: us-west-2d is not available")
    assert zone_problem(parse_config(prod_existing_vpc_config()), []) is None  # an existing VPC's subnets decide


def test_preflight_asks_the_account_for_its_zones(tmp_path):
    """The emulator's us-west-2 has four AZs: the default's three are there, nothing more is asked of the config."""
    with emulator_server(tmp_path / "emulator.log", *ENOUGH) as emu:
        r = preflight(tmp_path, emu.url)
    assert "ok    Availability Zones: the network's 3 are available to this account" in r.stdout, r.stdout + r.stderr
    assert "NO AZ" not in r.stdout


def test_the_tunnel_type_is_checked_in_the_first_existing_subnets_az(emulator, tmp_path):
    """In an existing VPC the tunnel lands in private_subnet_ids[0] (stacks/infra.py): preflight looks that subnet's
    AZ up (describe-subnets) and checks t4g.nano there. The emulator's offerings are AWS's (moto's recorded data):
    us-east-1e offers no t4g.nano, nor the default groups' types; us-east-1a offers them all."""
    ec2 = emulator.client("ec2", region="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    e, a = (ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
            for cidr, az in (("10.20.0.0/20", "us-east-1e"), ("10.20.16.0/20", "us-east-1a")))
    try:
        runs = {first: preflight(tmp_path, emulator.url, region="us-east-1", network={"existing": {
            "vpc_id": vpc, "private_subnet_ids": [first, other]}}) for first, other in ((e, a), (a, e))}
    finally:
        for s in (e, a):
            ec2.delete_subnet(SubnetId=s)
        ec2.delete_vpc(VpcId=vpc)
    tunnel = {first: [ln for ln in r.stdout.splitlines() if ln.startswith("NOT OFFERED t4g.nano")]
              for first, r in runs.items()}
    assert tunnel[e] == [
        "NOT OFFERED t4g.nano (the API tunnel) in us-east-1e: AWS offers it in us-east-1a, us-east-1b, us-east-1c, "
        f"us-east-1d, us-east-1f; list first in network.existing.private_subnet_ids a subnet in one of those (the "
        f"tunnel lands in the first, {e}) (or another instance type)"], runs[e].stdout + runs[e].stderr
    # The second subnet's AZ is the deployment's too (the node groups' types are checked there), not the tunnel's.
    assert tunnel[a] == [], runs[a].stdout
    assert ("NOT OFFERED m6i.2xlarge (node group core) in us-east-1e: AWS offers it in us-east-1a, us-east-1b, "
            "us-east-1c, us-east-1d, us-east-1f; give network.existing.private_subnet_ids in those AZs only (or "
            "another instance type)") in runs[a].stdout.splitlines()


# ------------------------------------------------------------------------------------------- the Spot role
SPOT_GPU = {"node_groups": [
    {"name": "core", "role": "core", "instance_types": ["m6i.2xlarge"], "min_size": 2, "desired_size": 2,
     "max_size": 4},
    {"name": "gpu", "role": "gpu", "instance_types": ["g5.xlarge"], "min_size": 0, "desired_size": 0, "max_size": 4,
     "capacity_type": "SPOT"}]}


def test_spot_needs_the_spot_service_linked_role(tmp_path):
    """A new account has no AWSServiceRoleForEC2Spot: with a Spot group, preflight fails on one line that gives the
    command creating it; with the role there (as that command leaves it: moto names a created service-linked role
    otherwise than AWS, so the test creates it by name and path) it passes; without Spot it asks nothing."""
    with emulator_server(tmp_path / "emulator.log", *ENOUGH, "--quota", "L-3819A6DF=64") as emu:
        r = preflight(tmp_path, emu.url, cluster=SPOT_GPU)
        assert r.returncode == 1, r.stdout + r.stderr
        assert ("NO ROLE EC2 Spot service-linked role AWSServiceRoleForEC2Spot: missing, and Spot launches (node "
                "group gpu) need it; create it once per account: aws iam create-service-linked-role "
                "--aws-service-name spot.amazonaws.com") in r.stdout.splitlines()
        on_demand = preflight(tmp_path, emu.url)
        assert on_demand.returncode == 0 and "AWSServiceRoleForEC2Spot" not in on_demand.stdout, on_demand.stdout

        emu.client("iam").create_role(
            RoleName="AWSServiceRoleForEC2Spot", Path="/aws-service-role/spot.amazonaws.com/",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "spot.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
        r = preflight(tmp_path, emu.url, cluster=SPOT_GPU)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("ok    EC2 Spot service-linked role AWSServiceRoleForEC2Spot: present (Spot: node group gpu)"
            in r.stdout.splitlines())
