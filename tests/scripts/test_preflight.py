"""scripts/preflight.py (`make preflight`): the quota arithmetic, then the real CLI -- the AWS CLI against the
emulator (tests/deploy/emulator.py serves EC2 quotas in Service Quotas: a new account's defaults, or applied
values) -- as users run it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from config import AppConfig, load_config, parse_config
from scripts.preflight import instance_class, nat_gateways, request_command, vcpu_needs
from tests.helpers import ROOT, app_env, emulator_server, prod_existing_vpc_config

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


# ------------------------------------------------------------------------------------------- the CLI
def preflight(tmp: Path, url: str, **config) -> subprocess.CompletedProcess:
    assert shutil.which("aws"), "the AWS CLI must be on PATH (make preflight uses it)"
    path = tmp / "preflight.yaml"
    path.write_text(yaml.safe_dump({"endpoints": {"url": url}, **config}))
    return subprocess.run([sys.executable, "-m", "scripts.preflight"], cwd=ROOT, env=app_env(config=path),
                          capture_output=True, text=True, timeout=300)


def _line(out: str, code: str) -> str:
    (line,) = [ln for ln in out.splitlines() if f"({code})" in ln]
    return line


def test_a_new_account_is_told_what_to_request(tmp_path):
    """AWS's defaults for a new account: 5 standard vCPUs, 0 G vCPUs, 5 Elastic IPs."""
    with emulator_server(tmp_path / "emulator.log") as url:
        r = preflight(tmp_path, url)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "account 123456789012" in r.stdout
    assert _line(r.stdout, "L-1216C47A").startswith("SHORT") and "32 vCPUs needed" in _line(r.stdout, "L-1216C47A")
    assert _line(r.stdout, "L-DB2E81BA").startswith("SHORT") and "gpu: 4 x g5.xlarge" in _line(r.stdout, "L-DB2E81BA")
    assert _line(r.stdout, "L-0263D0A3").startswith("ok") and "3 Elastic IPs needed" in _line(r.stdout, "L-0263D0A3")
    requests = [ln.strip() for ln in r.stdout.splitlines() if "request-service-quota-increase" in ln]
    assert requests == [
        "aws service-quotas request-service-quota-increase --region us-west-2 --service-code ec2 "
        "--quota-code L-1216C47A --desired-value 32",
        "aws service-quotas request-service-quota-increase --region us-west-2 --service-code ec2 "
        "--quota-code L-DB2E81BA --desired-value 16"]


def test_usage_outside_the_deployment_counts_and_its_own_does_not(tmp_path):
    with emulator_server(tmp_path / "emulator.log", "--quota", "L-1216C47A=640", "--quota", "L-DB2E81BA=64") as url:
        ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-west-2", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
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
        assert [ln.strip() for ln in r.stdout.splitlines() if "request-service-quota-increase" in ln] == [
            "aws service-quotas request-service-quota-increase --region us-west-2 --service-code ec2 "
            "--quota-code L-0263D0A3 --desired-value 6"]

        for allocation in others:
            ec2.release_address(AllocationId=allocation)
        r = preflight(tmp_path, url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all quotas hold the deployment" in r.stdout and "SHORT" not in r.stdout


def test_unreachable_aws_and_bad_config(tmp_path):
    with emulator_server(tmp_path / "emulator.log") as url:
        pass  # a port nothing listens on any more
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
