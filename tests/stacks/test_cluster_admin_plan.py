"""Cluster admins at plan time, with the real AWS provider (5.100.0) planning the synthesized infra stack
against the emulator (tests/deploy/emulator.py): the deploying principal is an assumed role, as in most
pipelines.

- Its access entry names the IAM role (arn:aws:iam::...:role/<path>/<name>), not the STS session ARN, which EKS
  does not accept as a principal.
- When that role is also listed in cluster.admin_principal_arns, Terraform plans ONE entry for it (the listed
  one): EKS answers a second entry for the same principal with 409 ResourceInUseException.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest
import yaml

from tests.helpers import ROOT, emulator_server, run_app

ACCOUNT = "123456789012"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/pipelines/Deployer"
OTHER_ADMIN = f"arn:aws:iam::{ACCOUNT}:role/PlatformAdmin"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="module")
def deployer_session(tmp_path_factory):
    """The emulator, and credentials of a session of the Deployer role (path /pipelines/)."""
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with emulator_server(log) as emu:
        url = emu.url
        emu.client("iam").create_role(RoleName="Deployer", Path="/pipelines/", AssumeRolePolicyDocument=TRUST)
        creds = emu.client("sts").assume_role(RoleArn=DEPLOYER, RoleSessionName="ci-run-42")["Credentials"]
        who = boto3.client("sts", endpoint_url=url, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                           aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"]).get_caller_identity()
        assert who["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/ci-run-42"  # what the provider sees
        yield url, creds


def _tf_env(tmp: Path) -> dict:
    rc = subprocess.run(["bash", str(ROOT / "scripts" / "terraformrc.sh"), str(tmp / "terraformrc")],
                        capture_output=True, text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0", TF_DATA_DIR=str(tmp / "tf-data"),
               AWS_EC2_METADATA_DISABLED="true")
    if rc:
        env["TF_CLI_CONFIG_FILE"] = rc
    return env


def _terraform(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(["terraform", *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=400)
    assert r.returncode == 0, f"terraform {args[0]} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _planned(text: str, rtype: str) -> dict[str, str]:
    """Address -> principal_arn of each ``rtype`` the plan text creates (`terraform show -json` would load
    the provider's schema again, slower than the plan itself)."""
    out, address = {}, None
    for line in text.splitlines():
        m = re.match(rf"\s*# ({rtype}\.\S+) will be created", line)
        if m:
            address = m.group(1)
        elif address and (m := re.match(r'\s*\+ principal_arn\s*= "([^"]+)"', line)):
            out[address], address = m.group(1), None
    return out


def planned_access_entries(url: str, creds: dict, admins: list[str], tmp: Path) -> dict[str, str]:
    """Synthesize with these admins, plan the infra stack; planned access entry address -> principal."""
    assert shutil.which("terraform"), "terraform must be on PATH"
    config = tmp / "plan.yaml"
    config.write_text(yaml.safe_dump({
        "name": "ray-plan", "region": "us-east-1",
        "endpoints": {"url": url, "access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"]},
        "network": {"availability_zones": ["us-east-1a", "us-east-1b"], "single_nat_gateway": True},
        "cluster": {"admin_principal_arns": admins, "node_groups": [
            {"name": "core", "role": "core", "instance_types": ["m6i.xlarge"]}]},
        "fsx": {"deployment_type": "SCRATCH_2"},
        "ray": {"worker_groups": [{"name": "cpu-group", "node_group": "core", "gpus": 0, "max_replicas": 2}]},
    }))
    out = tmp / "cdktf.out"
    r = run_app(config=config, outdir=out)
    assert r.returncode == 0, r.stderr[-3000:]
    stack = out / "stacks" / "infra"
    env = _tf_env(tmp)
    _terraform(["init", "-input=false"], stack, env)  # the local backend: state under tmp, never written
    # Only the access entries (and what they depend on): the rest of the stack has no bearing on them.
    doc = json.loads((stack / "cdk.tf.json").read_text())["resource"]
    targets = [f"-target={t}.{n}" for t in ("aws_eks_access_entry", "aws_eks_access_policy_association")
               for n in doc.get(t, {})]
    text = _terraform(["plan", "-input=false", "-lock=false", *targets], stack, env).stdout
    entries = _planned(text, "aws_eks_access_entry")
    policies = _planned(text, "aws_eks_access_policy_association")
    assert sorted(policies.values()) == sorted(entries.values()), "one admin policy association per entry"
    return entries


def test_the_creator_is_its_role_not_its_session(deployer_session, tmp_path):
    url, creds = deployer_session
    entries = planned_access_entries(url, creds, [OTHER_ADMIN], tmp_path)
    assert entries == {"aws_eks_access_entry.admin_0": OTHER_ADMIN, "aws_eks_access_entry.cluster_creator[0]": DEPLOYER}


def test_a_listed_creator_gets_one_entry(deployer_session, tmp_path):
    url, creds = deployer_session
    entries = planned_access_entries(url, creds, [OTHER_ADMIN, DEPLOYER], tmp_path)
    assert entries == {"aws_eks_access_entry.admin_0": OTHER_ADMIN, "aws_eks_access_entry.admin_1": DEPLOYER}
