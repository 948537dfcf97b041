"""scripts/build_image.sh -- what the infra stack's terraform_data runs to build the Ray image -- for real: bash, the
AWS CLI and moto's CodeBuild on 127.0.0.1 (the emulator of tests/deploy; the AWS_ENDPOINT_URL the stack sets when
endpoints.url is configured). moto's builds succeed at the first status check (it runs no Docker), so these tests
cover starting the build from the right source version, polling it to its end and the failures that can be made
here; CodeBuild itself and docker build cannot run on this machine (README)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from config.versions import CODEBUILD_IMAGE
from tests.helpers import ROOT, Emulator

SCRIPT = ROOT / "scripts" / "build_image.sh"
PROJECT = "ray-test-ray-image"


@pytest.fixture(scope="module")
def project(emulator: Emulator) -> str:
    role = emulator.client("iam").create_role(RoleName="ray-test-image-build", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    emulator.client("codebuild").create_project(
        name=PROJECT, source={"type": "S3", "location": "ray-test-data/image-build/context.zip"},
        artifacts={"type": "NO_ARTIFACTS"}, serviceRole=role,
        environment={"type": "LINUX_CONTAINER", "image": CODEBUILD_IMAGE, "computeType": "BUILD_GENERAL1_LARGE",
                     "privilegedMode": True})
    return PROJECT


def script_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict:
    """What terraform gives the local-exec: the stack's variables, the emulator endpoint, nothing of the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "no-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_ENDPOINT_URL=emulator.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               POLL_SECONDS="1", MAX_WAIT_MINUTES="2")
    env.update(extra)
    return env


def run(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)


def test_the_aws_cli_is_here():
    assert shutil.which("aws"), "the AWS CLI (a deploy prerequisite) must be on PATH to run the build script"


def test_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_starts_the_build_from_the_uploaded_version_and_waits_for_it(emulator, project, tmp_path):
    cb = emulator.client("codebuild")
    before = set(cb.list_builds_for_project(projectName=project)["ids"])
    r = run(script_env(emulator, tmp_path, PROJECT_NAME=project, SOURCE_VERSION="3HL4kqtJlcpXroDTDmJ",
                       IMAGE="123456789012.dkr.ecr.us-east-1.amazonaws.com/ray-custom:2.58.0-0123456789ab"))
    assert r.returncode == 0, r.stdout + r.stderr
    [build_id] = set(cb.list_builds_for_project(projectName=project)["ids"]) - before
    build = cb.batch_get_builds(ids=[build_id])["builds"][0]
    assert build["sourceVersion"] == "3HL4kqtJlcpXroDTDmJ" and build["buildStatus"] == "SUCCEEDED"
    assert f"build {build_id}" in r.stdout and r.stdout.rstrip().endswith(
        "ray-custom:2.58.0-0123456789ab is in ECR")


def test_without_a_source_version_the_latest_context_builds(emulator, project, tmp_path):
    r = run(script_env(emulator, tmp_path, PROJECT_NAME=project))
    assert r.returncode == 0, r.stdout + r.stderr
    cb = emulator.client("codebuild")
    latest = cb.batch_get_builds(ids=cb.list_builds_for_project(projectName=project)["ids"])["builds"]
    assert any(b["sourceVersion"] == "refs/heads/main" for b in latest)  # moto's stand-in for "no version given"


@pytest.mark.parametrize("extra,message", [
    ({"PROJECT_NAME": "ray-test-no-such-project"},
     "could not start a build of CodeBuild project ray-test-no-such-project"),
    ({}, "PROJECT_NAME is not set"),
])
def test_a_build_that_cannot_start_fails_the_apply_with_one_error(emulator, project, tmp_path, extra, message):
    r = run(script_env(emulator, tmp_path, **extra))
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), r.stderr


def test_no_aws_cli_is_one_clear_error(emulator, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    r = run(script_env(emulator, tmp_path, PROJECT_NAME=PROJECT, PATH=str(bin_dir)))
    assert r.returncode == 1 and "error: the AWS CLI ('aws') is not on PATH" in r.stderr
