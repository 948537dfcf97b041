"""The deploy path for real: the Makefile's own `make deploy` / `diff` / `destroy` (scripts/deploy.py: credentials,
synth, terraform in this deployment's data directory) on the infra stack, with real terraform and the real AWS
provider, against moto's AWS emulator on 127.0.0.1 (tests/deploy/emulator.py lists what it patches).

One cycle, the default deployment's shape (a core and a GPU group, FSx, the image build, the API tunnel): S3 backend
with native locking -> `make deploy STACKS=infra` (the image build's local-exec included) -> after another synth,
`make diff` finds the Terraform data where it left it and shows no changes -> a second terraform fails on the lock
another terraform holds -> a stripped ray stack reads the infra outputs through stacks/common.remote_state -> day 2:
a routine change (bigger node groups, a new node group, a new tag) plans without replacing or deleting anything
stateful, applies in place, does not rebuild the image, and a re-plan is empty -> a second deployment (another name)
from the same checkout applies beside the first without touching its state -> a plan against another deployment's
state is refused in one line -> `make destroy` of the first leaves the second alone. The emulator crashed on no
request, and it and every terraform process are gone afterwards (the emulator, with the second deployment in it).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import (
    MAKE,
    PARENT_MAKE_ENV,
    ROOT,
    TERRAFORM_TIMEOUT_S,
    Emulator,
    app_env,
    emulator_server,
    run_app,
    terraform,
    terraform_env,
)

HERE = Path(__file__).resolve().parent
READER_APP = HERE / "reader_app.py"
STATE_BUCKET = "ray-eks-tfstate-e2e"
KEY_PREFIX = "e2e"
NAME = "ray-e2e"
REGION = "us-east-1"
# The second deployment from the same checkout: another name, another VPC.
OTHER_NAME = "ray-e2e-two"
OTHER_VPC = "10.30.0.0/16"
# A third config, for the refusal of another deployment's state (never applied).
THIRD_NAME = "ray-e2e-three"
# A terraform or make command that runs this long is stuck (a provider waiter the emulator never ends): it is killed
# with its plugins, and the failure shows what it waited on (tests/helpers.py terraform).
TF_TIMEOUT_S = TERRAFORM_TIMEOUT_S

# Day 2: what a platform team routinely changes.
DAY2_TAG = ("cost-center", "ml-platform")
DAY2_MAX_SIZES = {"core": 3, "gpu": 4}
DAY2_GROUP = {"name": "cpu", "role": "cpu", "instance_types": ["m6i.xlarge"], "min_size": 0, "desired_size": 0,
              "max_size": 2, "disk_size_gib": 50}
# What holds data or identity: a replacement or delete of any of these on a routine change loses data (FSx, S3,
# ECR), the cluster and everything in it, or the keys the data is encrypted with; a replaced node group drains
# every node of the group.
STATEFUL_TYPES = ("aws_fsx_lustre_file_system", "aws_s3_bucket", "aws_ecr_repository", "aws_eks_cluster",
                  "aws_kms_key", "aws_eks_node_group")


def _state_key(name: str = NAME) -> str:
    return f"{KEY_PREFIX}/{name}/{REGION}/infra.tfstate"


def _data_dir(tmp: Path, name: str = NAME) -> Path:
    """Where scripts/tf.py keeps the infra stack's Terraform data for a deployment (RAY_EKS_BUILD_DIR below)."""
    return tmp / "build" / "terraform" / name / REGION / "infra"


def _make(tmp: Path, config: Path, *args: str, ok=(0,), timeout: int = TF_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`make <args>` in the checkout, as a user runs it: the config by RAY_EKS_CONFIG, this test's output folder and
    build directory, no AWS or Terraform settings of the machine's."""
    env = {k: v for k, v in app_env(config=config, outdir=tmp / "cdktf.out").items()
           if not k.startswith(("AWS_", "TF_")) and k not in PARENT_MAKE_ENV}
    env.update(RAY_EKS_BUILD_DIR=str(tmp / "build"), AWS_EC2_METADATA_DISABLED="true")
    started = time.monotonic()
    proc = subprocess.Popen([*MAKE, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"make {' '.join(args)} ran over {timeout}s:\n{stdout[-6000:]}\n{stderr[-3000:]}")
    print(f"make {' '.join(args)} ({config.stem}): {time.monotonic() - started:.0f}s")
    assert proc.returncode in ok, f"make {' '.join(args)} exited {proc.returncode}:\n{stdout[-4000:]}\n{stderr[-4000:]}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _write_config(data: dict, tmp: Path, name: str) -> Path:
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def _config_data(emulator: Emulator) -> dict:
    """The default deployment's shape (a core and a GPU group), small."""
    return {
        "name": NAME,
        "region": REGION,
        "endpoints": {"url": emulator.url},
        "backend": {"type": "s3", "bucket": STATE_BUCKET, "key_prefix": KEY_PREFIX},
        "network": {"vpc_cidr": "10.20.0.0/16", "availability_zones": ["us-east-1a", "us-east-1b"],
                    "single_nat_gateway": True, "flow_log_retention_days": 7},
        # endpoint_access: the default, tunnel (the API tunnel instance and its SSM endpoints are applied too).
        "cluster": {"kubernetes_version": "1.34", "log_retention_days": 7,
                    "node_groups": [
                        {"name": "core", "role": "core", "instance_types": ["m6i.xlarge"],
                         "min_size": 1, "desired_size": 1, "max_size": 2, "disk_size_gib": 50},
                        {"name": "gpu", "role": "gpu", "instance_types": ["g5.xlarge"],
                         "ami_type": "AL2023_x86_64_NVIDIA", "min_size": 0, "desired_size": 0, "max_size": 2,
                         "disk_size_gib": 100}]},
        "fsx": {"deployment_type": "SCRATCH_2", "storage_capacity_gib": 1200},
        "protection": {"prevent_destroy": False},
        "ray": {"worker_groups": [{"name": "gpu-group", "node_group": "gpu", "gpus": 1, "max_replicas": 2}]},
    }


def _day2(data: dict) -> dict:
    """The routine change: bigger max sizes of both groups, a new CPU group, a new tag."""
    data = copy.deepcopy(data)
    for g in data["cluster"]["node_groups"]:
        g["max_size"] = DAY2_MAX_SIZES[g["name"]]
    data["cluster"]["node_groups"].append(dict(DAY2_GROUP))
    data["tags"] = {"project": "ray-on-eks", "managed-by": "cdktf", DAY2_TAG[0]: DAY2_TAG[1]}
    return data


def _synth(data: dict, tmp: Path, name: str) -> Path:
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp / "cdktf.out"  # the same directory each time, as `cdktf synth` rewrites cdktf.out
    r = run_app(config=config, outdir=out)
    assert r.returncode == 0, r.stderr[-3000:]
    return config


def _holder(cwd: Path, env: dict) -> subprocess.Popen:
    """A second terraform that holds the state lock: `terraform console` locks the state while it
    waits for input on stdin."""
    return subprocess.Popen(["terraform", "console", "-no-color"], cwd=cwd, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


LOCK_KEY = f"{_state_key()}.tflock"


def _lock_exists(s3) -> bool:
    return any(o["Key"] == LOCK_KEY for o in s3.list_objects_v2(Bucket=STATE_BUCKET).get("Contents", []))


def _assert_image_built(emulator: Emulator, outputs: dict) -> str:
    """ray.image.source build (the default): apply uploaded the build context, scripts/build_image.sh (the
    terraform_data's local-exec, through the emulator's endpoint) started ONE CodeBuild build from exactly that
    upload and waited for it, and ray_image names the tag the build pushes. Returns the build's id."""
    version = emulator.client("s3").head_object(Bucket=outputs["data_bucket_name"]["value"],
                                                Key="image-build/context.zip")["VersionId"]
    codebuild = emulator.client("codebuild")
    [build_id] = codebuild.list_builds_for_project(projectName=f"{NAME}-ray-image")["ids"]
    build = codebuild.batch_get_builds(ids=[build_id])["builds"][0]
    assert build["sourceVersion"] == version and build["buildStatus"] == "SUCCEEDED"
    assert outputs["ray_image"]["value"].startswith(f"{outputs['ecr_repository_url']['value']}:2.58.0-")
    return build_id


def _assert_empty_plan(stack_dir: Path, env: dict, when: str) -> None:
    plan = terraform(["plan", "-detailed-exitcode", "-input=false"], stack_dir, env, ok=(0, 2))
    changes = plan.stdout[plan.stdout.find("Terraform will perform"):]
    assert plan.returncode == 0, f"plan {when} is not empty:\n{changes[:8000]}"


def _day2_plan(stack_dir: Path, env: dict, state: dict) -> Path:
    """Plan the day-2 change into a file; check from its JSON that nothing stateful is replaced or deleted, the
    existing node groups update in place, the new one is created and the image build is left alone."""
    plan_file = stack_dir / "day2.tfplan"
    terraform(["plan", "-input=false", f"-out={plan_file}"], stack_dir, env)
    plan = json.loads(terraform(["show", "-json", str(plan_file)], stack_dir, env).stdout)
    actions = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]}

    destructive = {a: act for a, act in actions.items() if "delete" in act}
    assert not destructive, f"the day-2 change deletes or replaces: {destructive}"
    existing = {(r["type"], r["name"]) for r in state["resources"] if r["mode"] == "managed"}
    # By type and name, so that an indexed address (count, for_each) is matched too.
    stateful = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]
                if c["mode"] == "managed" and c["type"] in STATEFUL_TYPES and (c["type"], c["name"]) in existing}
    # The list is the deployment's, read from state: every kind above is there (else the check says nothing).
    assert {t for t, _ in existing if t in STATEFUL_TYPES} == set(STATEFUL_TYPES), sorted(existing)
    assert {a.split(".")[0] for a in stateful} == set(STATEFUL_TYPES), sorted(stateful)
    assert all(act in (["no-op"], ["update"]) for act in stateful.values()), stateful
    groups = {a: act for a, act in actions.items() if a.startswith("aws_eks_node_group.")}
    assert groups == {"aws_eks_node_group.core": ["update"], "aws_eks_node_group.gpu": ["update"],
                      "aws_eks_node_group.cpu": ["create"]}, groups
    # The new tag reaches an add-on (EKS TagResource on its ARN) and the existing groups' launch templates.
    tagged = [c for c in plan["resource_changes"]
              if c["type"] == "aws_eks_addon" and c["change"]["actions"] == ["update"]
              and c["change"]["after"]["tags_all"].get(DAY2_TAG[0]) == DAY2_TAG[1]]
    assert tagged, "the new tag does not reach the EKS add-ons"
    templates = {c["name"] for c in plan["resource_changes"]
                 if c["type"] == "aws_launch_template" and c["change"]["actions"] == ["update"]
                 and c["change"]["after"]["tags_all"].get(DAY2_TAG[0]) == DAY2_TAG[1]}
    assert templates == {"core", "gpu"}, f"the new tag reaches the launch templates of {sorted(templates)}"
    # The image's content did not change: the build (a terraform_data replaced when its image tag changes) stays.
    assert actions["terraform_data.ray_image_build"] == ["no-op"]
    return plan_file


# How the emulator's server logs a request it crashed on, with the traceback after it: werkzeug for an exception in
# the app (after the 500 went out), socketserver's handle_error for one outside it (no answer at all).
_CRASH_MARKERS = re.compile(r"Error on request:|Exception occurred during processing of request from [^\n]*")


def _emulator_errors(log: Path) -> list[str]:
    """The requests the emulator failed with its own exception: the provider's SDK resends such a request, so a create
    can run twice, and the apply fails on a name it made itself. Each as the exception's last line."""
    errors = []
    for block in _CRASH_MARKERS.split(log.read_text(errors="replace"))[1:]:
        traceback = [line for line in itertools.takewhile(
            lambda line: not line.startswith(("127.0.0.1 - -", "-" * 40)), block.strip().splitlines()) if line.strip()]
        errors.append(traceback[-1] if traceback else block.strip()[:200])
    return errors


def test_deploy_cycle(emulator: Emulator, tmp_path: Path) -> None:
    try:
        _deploy_cycle(emulator, tmp_path)
    except BaseException as e:
        if errors := _emulator_errors(emulator.log):
            e.add_note(f"the emulator failed {len(errors)} request(s) ({emulator.log}): {errors[:5]}")
        raise
    # Every answer was the emulator's decision, none a crash the SDK's retries happened to hide.
    assert _emulator_errors(emulator.log) == []


def _state(s3, name: str = NAME) -> dict:
    return json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=_state_key(name))["Body"].read())


def _deploy_cycle(emulator: Emulator, tmp_path: Path) -> None:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket=STATE_BUCKET)
    s3.put_bucket_versioning(Bucket=STATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})

    data = _config_data(emulator)
    config = _write_config(data, tmp_path, "e2e")
    deployed = _make(tmp_path, config, "deploy", "STACKS=infra")
    assert f"deployment {NAME} ({REGION}), account 123456789012" in deployed.stdout  # credentials checked first
    stack_dir = tmp_path / "cdktf.out" / "stacks" / "infra"
    infra_json = json.loads((stack_dir / "cdk.tf.json").read_text())
    backend = infra_json["terraform"]["backend"]["s3"]
    assert backend["use_lockfile"] is True and backend["encrypt"] is True
    assert backend["key"] == _state_key()  # the deployment's name and region are in the key
    assert infra_json["terraform"]["required_version"] == ">= 1.10"
    # The Terraform data is this deployment's, outside cdktf.out.
    data_dir = _data_dir(tmp_path)
    assert (data_dir / "terraform.tfstate").is_file() and not (stack_dir / ".terraform").exists()

    head = s3.head_object(Bucket=STATE_BUCKET, Key=_state_key())
    assert head.get("ServerSideEncryption"), "state object is not encrypted (backend encrypt = true)"
    state = _state(s3)
    assert state["outputs"]["cluster_name"]["value"] == NAME
    assert state["outputs"]["deployment"]["value"] == {"name": NAME, "region": REGION}
    assert state["outputs"]["endpoint_access"]["value"] == "tunnel"
    tunnel = state["outputs"]["api_tunnel_instance_id"]["value"]
    (instance,) = [i for r in emulator.client("ec2").describe_instances(InstanceIds=[tunnel])["Reservations"]
                   for i in r["Instances"]]
    assert instance["MetadataOptions"]["HttpTokens"] == "required" and "KeyName" not in instance
    assert not _lock_exists(s3), "apply left its lock file behind"
    build_id = _assert_image_built(emulator, state["outputs"])

    # Re-plan through the Makefile after the synth it runs replaced cdktf.out: the Terraform data survived (no provider
    # installed again), and what apply made is what the config says.
    diff = _make(tmp_path, config, "diff", "STACKS=infra")
    assert "No changes." in diff.stdout, diff.stdout[-4000:]
    assert "Installing hashicorp/aws" not in diff.stdout + diff.stderr

    env = terraform_env(tmp_path, data_dir, REGION)
    # Locking: while one terraform holds the lock, another fails at once, naming the lock.
    holder = _holder(stack_dir, env)
    try:
        deadline = time.monotonic() + 60
        while not _lock_exists(s3) and time.monotonic() < deadline and holder.poll() is None:
            time.sleep(0.5)
        assert _lock_exists(s3), "the holding terraform never took the lock"
        body = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=LOCK_KEY)["Body"].read())
        blocked = terraform(["plan", "-lock-timeout=0s", "-input=false"], stack_dir, env, ok=(1,))
        assert "Error acquiring the state lock" in blocked.stderr, blocked.stderr[-3000:]
        assert body["ID"] in blocked.stderr, "the error does not name the lock that blocks it"
    finally:
        holder.stdin.close()  # end of input: console exits and releases the lock
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(timeout=10)
        holder.stdout.close()
    assert not _lock_exists(s3), "the lock was not released"

    # The ray stacks' reader (stacks/common.remote_state, same config) sees the infra outputs.
    reader_out = tmp_path / "reader.out"
    r = subprocess.run([sys.executable, str(READER_APP), str(reader_out)], cwd=ROOT, env=app_env(config=config),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    reader_dir = reader_out / "stacks" / "reader"
    rs = json.loads((reader_dir / "cdk.tf.json").read_text())["data"]["terraform_remote_state"]["infra"]
    assert rs["backend"] == "s3" and rs["config"]["key"] == _state_key() and rs["config"]["bucket"] == STATE_BUCKET
    renv = terraform_env(tmp_path, tmp_path / "tf-reader", REGION)
    terraform(["init", "-input=false"], reader_dir, renv)
    terraform(["apply", "-auto-approve", "-input=false"], reader_dir, renv)
    outputs = json.loads(terraform(["output", "-json"], reader_dir, renv).stdout)
    for name in ("cluster_name", "vpc_id", "fsx_file_system_id", "data_bucket_name"):
        assert outputs[name]["value"] == state["outputs"][name]["value"], name
    assert outputs["cluster_name"]["value"] == NAME

    # Day 2: the routine change, synthesized into the same directory as a user's next `make synth`; planned into a
    # file whose JSON is checked, and exactly that plan applied.
    _synth(_day2(data), tmp_path, "e2e-day2")
    # A fresh synth has no lock file: init again, as make deploy does.
    terraform(["init", "-input=false"], stack_dir, env)
    plan_file = _day2_plan(stack_dir, env, state)
    terraform(["apply", "-input=false", str(plan_file)], stack_dir, env)
    eks = emulator.client("eks")
    names = _state(s3)["outputs"]["node_group_names"]["value"]
    assert set(names) == {"core", "gpu", "cpu"}
    for group, size in [*DAY2_MAX_SIZES.items(), ("cpu", DAY2_GROUP["max_size"])]:
        ng = eks.describe_nodegroup(clusterName=NAME, nodegroupName=names[group])["nodegroup"]
        assert ng["scalingConfig"]["maxSize"] == size, (group, ng["scalingConfig"])
        assert ng["tags"].get(DAY2_TAG[0]) == DAY2_TAG[1], (group, ng["tags"])
    for addon in eks.list_addons(clusterName=NAME)["addons"]:
        arn = eks.describe_addon(clusterName=NAME, addonName=addon)["addon"]["addonArn"]
        assert eks.list_tags_for_resource(resourceArn=arn)["tags"].get(DAY2_TAG[0]) == DAY2_TAG[1], addon
    assert eks.describe_cluster(name=NAME)["cluster"]["tags"].get(DAY2_TAG[0]) == DAY2_TAG[1]
    assert _assert_image_built(emulator, _state(s3)["outputs"]) == build_id, "the day-2 change rebuilt the image"
    _assert_empty_plan(stack_dir, env, "after the day-2 apply")
    day2_config = tmp_path / "e2e-day2.yaml"

    # A second deployment from the same checkout (another name, another VPC): its own state key and Terraform data,
    # applied beside the first, whose state it does not touch.
    before = s3.head_object(Bucket=STATE_BUCKET, Key=_state_key())
    other = _write_config({**data, "name": OTHER_NAME, "network": {**data["network"], "vpc_cidr": OTHER_VPC}},
                          tmp_path, "e2e-other")
    _make(tmp_path, other, "deploy", "STACKS=infra")
    assert _state(s3, OTHER_NAME)["outputs"]["deployment"]["value"] == {"name": OTHER_NAME, "region": REGION}
    assert _data_dir(tmp_path, OTHER_NAME).is_dir()
    assert sorted(eks.list_clusters()["clusters"]) == sorted([NAME, OTHER_NAME])
    after = s3.head_object(Bucket=STATE_BUCKET, Key=_state_key())
    assert (after["ETag"], after["VersionId"]) == (before["ETag"], before["VersionId"]), "the second deploy wrote " \
        "the first one's state"

    # A plan against another deployment's state is refused before it runs: the first deployment's state at a third
    # one's key (a copied state, a mistyped key) is named as such, in one line.
    third = _write_config({**data, "name": THIRD_NAME}, tmp_path, "e2e-third")
    s3.copy_object(Bucket=STATE_BUCKET, Key=_state_key(THIRD_NAME), ServerSideEncryption="AES256",
                   CopySource={"Bucket": STATE_BUCKET, "Key": _state_key()})
    refused = _make(tmp_path, third, "diff", "STACKS=infra", ok=(2,))  # make's status for a failed recipe
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert f"belongs to deployment {NAME} ({REGION}), not to this config's {THIRD_NAME} ({REGION})" in line, \
        refused.stderr
    s3.delete_object(Bucket=STATE_BUCKET, Key=_state_key(THIRD_NAME))

    # The first deployment's destroy leaves the second one alone (its state and its resources).
    other_before = s3.head_object(Bucket=STATE_BUCKET, Key=_state_key(OTHER_NAME))
    _make(tmp_path, day2_config, "destroy", "STACKS=infra")
    state = _state(s3)
    assert state["resources"] == [], [r["type"] + "." + r["name"] for r in state["resources"]]
    assert eks.list_clusters()["clusters"] == [OTHER_NAME]
    assert s3.head_object(Bucket=STATE_BUCKET, Key=_state_key(OTHER_NAME))["VersionId"] == other_before["VersionId"]
    others = _state(s3, OTHER_NAME)["outputs"]
    fsx = emulator.client("fsx").describe_file_systems()["FileSystems"]
    assert [f["FileSystemId"] for f in fsx] == [others["fsx_file_system_id"]["value"]]
    assert emulator.client("codebuild").list_projects()["projects"] == [f"{OTHER_NAME}-ray-image"]


def test_emulator_errors_names_the_exception(tmp_path: Path) -> None:
    """The check above reads werkzeug's log as it is written: an action moto lacks is found, by its exception."""
    from botocore.config import Config

    log = tmp_path / "emulator.log"
    with emulator_server(log) as emu:
        assert _emulator_errors(log) == []
        codebuild = emu.client("codebuild", config=Config(retries={"total_max_attempts": 1}))  # one request
        with pytest.raises(codebuild.exceptions.ClientError, match="500"):
            codebuild.list_report_groups()
        # werkzeug writes the traceback after the 500 went out: wait for it before the server stops
        deadline = time.monotonic() + 10
        while not (errors := _emulator_errors(log)) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert errors == ["NotImplementedError: The list_report_groups action has not been implemented"]


def test_emulator_errors_outside_the_app(tmp_path: Path) -> None:
    """A crash before the app runs (werkzeug's environ) is logged by socketserver's handle_error, in its format."""
    log = tmp_path / "emulator.log"
    log.write_text('127.0.0.1 - - [27/Nov/2026 05:55:10] "PUT /b HTTP/1.1" 200 -\n' + "-" * 40 + "\n"
                   "Exception occurred during processing of request from ('127.0.0.1', 40962)\n"
                   'Traceback (most recent call last):\n  File "serving.py", line 256, in run_wsgi\n'
                   "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff\n" + "-" * 40 + "\n"
                   '127.0.0.1 - - [27/Nov/2026 05:55:11] "GET /b HTTP/1.1" 200 -\n')
    assert _emulator_errors(log) == ["UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"]
