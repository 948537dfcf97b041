"""`terraform init` + `terraform validate` of the synthesized infra stack against the real AWS provider
(5.100.0): catches what JSON-level tests cannot -- unknown arguments, wrong block shapes, bad references."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT, app_env

AWS_PROVIDER_VERSION = "5.100.0"


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory) -> dict:
    """Terraform's environment: the local provider mirror when this machine has one, else the registry."""
    assert shutil.which("terraform"), "terraform (>= 1.10) must be on PATH for these tests"
    env = {k: v for k, v in os.environ.items() if k not in ("TF_DATA_DIR", "TF_WORKSPACE", "TF_CLI_ARGS",
                                                             "TF_CLI_ARGS_init", "TF_CLI_ARGS_validate")}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    rc_path = tmp_path_factory.mktemp("terraformrc") / "terraformrc"
    r = subprocess.run(["bash", str(ROOT / "scripts" / "terraformrc.sh"), str(rc_path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if r.stdout.strip():
        env["TF_CLI_CONFIG_FILE"] = r.stdout.strip()
    return env


def _terraform(args: list[str], cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run(["terraform", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("synth", ["default_synth", "dev_synth", "existing_synth", "edge_synth"])
def test_infra_stack_inits_and_validates(synth, request, tf_env, tmp_path):
    # A copy: init writes .terraform/ and a lock file, which must not land in the shared synth output.
    workdir = tmp_path / "infra"
    shutil.copytree(request.getfixturevalue(synth)["_outdir"] / "stacks" / "infra", workdir)

    init = _terraform(["init", "-backend=false", "-input=false", "-no-color"], workdir, tf_env)
    assert init.returncode == 0, f"terraform init failed:\n{init.stdout[-3000:]}\n{init.stderr[-3000:]}"
    lock = (workdir / ".terraform.lock.hcl").read_text()
    m = re.search(r'provider "registry\.terraform\.io/hashicorp/aws" \{\s*version\s*=\s*"([^"]+)"', lock)
    assert m and m.group(1) == AWS_PROVIDER_VERSION, f"expected hashicorp/aws {AWS_PROVIDER_VERSION}:\n{lock}"

    validate = _terraform(["validate", "-json", "-no-color"], workdir, tf_env)
    result = json.loads(validate.stdout)
    problems = [f"{d['severity']}: {d['summary']}: {d.get('detail', '')} "
                f"({d.get('range', {}).get('filename', '')}:{d.get('range', {}).get('start', {}).get('line', '')})"
                for d in result.get("diagnostics", [])]
    assert result["valid"] is True and validate.returncode == 0, "\n".join(problems)
    # Deprecations surface as warnings: fix them while the provider still accepts the old form.
    assert result["warning_count"] == 0, "\n".join(problems)


def test_orchestrator_aws_resources_init_and_validate(tf_env, tmp_path):
    """The orchestrator's function, security group and rules, roles, log groups, key, access entry and state machine,
    synthesized alone with the AWS provider (the ray stack's kubernetes/helm providers are not available here)."""
    out = tmp_path / "cdktf.out"
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "stacks" / "orchestrator_aws_app.py"), str(out)],
                       cwd=ROOT, env=app_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    workdir = out / "stacks" / "orchestrator-aws"
    doc = json.loads((workdir / "cdk.tf.json").read_text())
    assert {"aws_lambda_function", "aws_security_group", "aws_vpc_security_group_egress_rule",
            "aws_vpc_security_group_ingress_rule", "aws_iam_role", "aws_iam_role_policy", "aws_cloudwatch_log_group",
            "aws_kms_key", "aws_eks_access_entry", "aws_sfn_state_machine"} <= set(doc["resource"])
    assert (workdir / doc["resource"]["aws_lambda_function"]["ray_orchestrator"]["filename"]).is_file()

    init = _terraform(["init", "-backend=false", "-input=false", "-no-color"], workdir, tf_env)
    assert init.returncode == 0, f"terraform init failed:\n{init.stdout[-3000:]}\n{init.stderr[-3000:]}"
    validate = _terraform(["validate", "-json", "-no-color"], workdir, tf_env)
    result = json.loads(validate.stdout)
    problems = [f"{d['severity']}: {d['summary']}: {d.get('detail', '')}" for d in result.get("diagnostics", [])]
    assert result["valid"] is True and validate.returncode == 0, "\n".join(problems)
    assert result["warning_count"] == 0, "\n".join(problems)
