"""The deploy path for real: the synthesized infra stack, real terraform and the real AWS provider,
against moto's AWS emulator on 127.0.0.1 (tests/deploy/emulator.py lists what it patches).

One cycle: S3 backend with native locking -> init -> apply -> plan shows no changes -> a second
terraform fails on the lock another terraform holds -> a stripped ray stack reads the infra outputs
through stacks/common.remote_state -> destroy. The emulator and every terraform process are gone
afterwards.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import yaml

from tests.helpers import ROOT, app_env, run_app

HERE = Path(__file__).resolve().parent
EMULATOR = HERE / "emulator.py"
READER_APP = HERE / "reader_app.py"
STATE_BUCKET = "ray-eks-tfstate-e2e"
KEY_PREFIX = "e2e"
CYCLE_BUDGET_S = 300


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Emulator:
    proc: subprocess.Popen
    port: int
    log: Path
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory) -> Emulator:
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with open(log, "w") as err:
        # Own process group: the finalizer ends the server and anything it started, nothing else.
        proc = subprocess.Popen([sys.executable, str(EMULATOR), "--port", "0", "--exit-on-stdin-eof"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True, cwd=ROOT)
    port = None
    deadline = time.monotonic() + 60
    while port is None and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("PORT "):
                port = int(line.split()[1])
    emu = Emulator(proc, port or 0, log)
    if port is None or not _port_open(port):
        emu.stop()
        pytest.fail(f"emulator did not start:\n{log.read_text()[-3000:]}")
    yield emu
    emu.stop()
    assert not _port_open(emu.port), f"port {emu.port} still open after the emulator stopped"


def _tf_env(tmp: Path, data_dir: Path) -> dict:
    rc = subprocess.run([str(ROOT / "scripts" / "terraformrc.sh"), str(tmp / "terraformrc")],
                        capture_output=True, text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0", TF_DATA_DIR=str(data_dir),
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true")
    if rc:
        env["TF_CLI_CONFIG_FILE"] = rc
    return env


def _tf(args: list[str], cwd: Path, env: dict, timeout: int = 240, ok=(0,)) -> subprocess.CompletedProcess:
    # Own process group: on a timeout, terraform and its provider plugins go together, and what
    # terraform printed so far (which resource it waits on) is in the failure.
    proc = subprocess.Popen(["terraform", *args, "-no-color"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"terraform {' '.join(args)} ran over {timeout}s:\n{stdout[-6000:]}\n{stderr[-3000:]}")
    r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert r.returncode in ok, f"terraform {' '.join(args)} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def _config(emulator: Emulator, path: Path) -> Path:
    cfg = {
        "name": "ray-e2e",
        "region": "us-east-1",
        "endpoints": {"url": emulator.url},
        "backend": {"type": "s3", "bucket": STATE_BUCKET, "key_prefix": KEY_PREFIX},
        "network": {"vpc_cidr": "10.20.0.0/16", "availability_zones": ["us-east-1a", "us-east-1b"],
                    "single_nat_gateway": True, "flow_log_retention_days": 7},
        "cluster": {"kubernetes_version": "1.34", "public_access_cidrs": ["203.0.113.0/24"], "log_retention_days": 7,
                    "node_groups": [{"name": "core", "role": "core", "instance_types": ["m6i.xlarge"],
                                     "min_size": 1, "desired_size": 1, "max_size": 2, "disk_size_gib": 50}]},
        "fsx": {"deployment_type": "SCRATCH_2", "storage_capacity_gib": 1200},
        "protection": {"prevent_destroy": False},
        "ray": {"worker_groups": [{"name": "cpu-group", "node_group": "core", "gpus": 0}]},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _holder(cwd: Path, env: dict) -> subprocess.Popen:
    """A second terraform that holds the state lock: `terraform console` locks the state while it
    waits for input on stdin."""
    return subprocess.Popen(["terraform", "console", "-no-color"], cwd=cwd, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _lock_key(emulator: Emulator) -> str:
    return f"{KEY_PREFIX}/infra.tfstate.tflock"


def _lock_exists(s3, key: str) -> bool:
    return any(o["Key"] == key for o in s3.list_objects_v2(Bucket=STATE_BUCKET).get("Contents", []))


def _assert_image_built(emulator: Emulator, outputs: dict) -> None:
    """ray.image.source build (the default): apply uploaded the build context, scripts/build_image.sh (the
    terraform_data's local-exec, through the emulator's endpoint) started one CodeBuild build from exactly that
    upload and waited for it, and ray_image names the tag the build pushes."""
    version = emulator.client("s3").head_object(Bucket=outputs["data_bucket_name"]["value"],
                                                Key="image-build/context.zip")["VersionId"]
    codebuild = emulator.client("codebuild")
    [build_id] = codebuild.list_builds_for_project(projectName="ray-e2e-ray-image")["ids"]
    build = codebuild.batch_get_builds(ids=[build_id])["builds"][0]
    assert build["sourceVersion"] == version and build["buildStatus"] == "SUCCEEDED"
    assert outputs["ray_image"]["value"].startswith(f"{outputs['ecr_repository_url']['value']}:2.58.0-")


def test_deploy_cycle(emulator: Emulator, tmp_path: Path) -> None:
    started = time.monotonic()
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket=STATE_BUCKET)
    s3.put_bucket_versioning(Bucket=STATE_BUCKET, VersioningConfiguration={"Status": "Enabled"})

    config = _config(emulator, tmp_path / "e2e.yaml")
    out = tmp_path / "cdktf.out"
    r = run_app(config=config, outdir=out)
    assert r.returncode == 0, r.stderr[-3000:]
    stack_dir = out / "stacks" / "infra"
    backend = json.loads((stack_dir / "cdk.tf.json").read_text())["terraform"]["backend"]["s3"]
    assert backend["use_lockfile"] is True and backend["encrypt"] is True
    assert backend["key"] == f"{KEY_PREFIX}/infra.tfstate"

    env = _tf_env(tmp_path, tmp_path / "tf-infra")
    _tf(["init", "-input=false"], stack_dir, env)
    _tf(["apply", "-auto-approve", "-input=false"], stack_dir, env, timeout=CYCLE_BUDGET_S)

    state_key = f"{KEY_PREFIX}/infra.tfstate"
    head = s3.head_object(Bucket=STATE_BUCKET, Key=state_key)
    assert head.get("ServerSideEncryption"), "state object is not encrypted (backend encrypt = true)"
    state = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=state_key)["Body"].read())
    assert state["outputs"]["cluster_name"]["value"] == "ray-e2e"
    assert not _lock_exists(s3, _lock_key(emulator)), "apply left its lock file behind"
    _assert_image_built(emulator, state["outputs"])

    # Re-plan: what apply made is what the config says, so nothing to do.
    plan = _tf(["plan", "-detailed-exitcode", "-input=false"], stack_dir, env, ok=(0, 2))
    changes = plan.stdout[plan.stdout.find("Terraform will perform"):]
    assert plan.returncode == 0, f"plan after apply is not empty:\n{changes[:8000]}"

    # Locking: while one terraform holds the lock, another fails at once, naming the lock.
    holder = _holder(stack_dir, env)
    try:
        deadline = time.monotonic() + 60
        while not _lock_exists(s3, _lock_key(emulator)) and time.monotonic() < deadline and holder.poll() is None:
            time.sleep(0.5)
        assert _lock_exists(s3, _lock_key(emulator)), "the holding terraform never took the lock"
        body = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=_lock_key(emulator))["Body"].read())
        blocked = _tf(["plan", "-lock-timeout=0s", "-input=false"], stack_dir, env, ok=(1,))
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
    assert not _lock_exists(s3, _lock_key(emulator)), "the lock was not released"

    # The ray stacks' reader (stacks/common.remote_state, same config) sees the infra outputs.
    reader_out = tmp_path / "reader.out"
    r = subprocess.run([sys.executable, str(READER_APP), str(reader_out)], cwd=ROOT, env=app_env(config=config),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    reader_dir = reader_out / "stacks" / "reader"
    rs = json.loads((reader_dir / "cdk.tf.json").read_text())["data"]["terraform_remote_state"]["infra"]
    assert rs["backend"] == "s3" and rs["config"]["key"] == state_key and rs["config"]["bucket"] == STATE_BUCKET
    renv = _tf_env(tmp_path, tmp_path / "tf-reader")
    _tf(["init", "-input=false"], reader_dir, renv)
    _tf(["apply", "-auto-approve", "-input=false"], reader_dir, renv)
    outputs = json.loads(_tf(["output", "-json"], reader_dir, renv).stdout)
    for name in ("cluster_name", "vpc_id", "fsx_file_system_id", "data_bucket_name"):
        assert outputs[name]["value"] == state["outputs"][name]["value"], name
    assert outputs["cluster_name"]["value"] == "ray-e2e"

    _tf(["destroy", "-auto-approve", "-input=false"], stack_dir, env, timeout=CYCLE_BUDGET_S)
    state = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=state_key)["Body"].read())
    assert state["resources"] == [], [r["type"] + "." + r["name"] for r in state["resources"]]
    assert emulator.client("eks").list_clusters()["clusters"] == []
    assert emulator.client("fsx").describe_file_systems()["FileSystems"] == []
    assert emulator.client("codebuild").list_projects()["projects"] == []

    elapsed = time.monotonic() - started
    print(f"deploy cycle: {elapsed:.0f}s")
    assert elapsed < CYCLE_BUDGET_S, f"the cycle took {elapsed:.0f}s (budget {CYCLE_BUDGET_S}s)"

    port = emulator.port
    emulator.stop()
    assert not _port_open(port), f"port {port} still open after the emulator stopped"
    shutil.rmtree(tmp_path / "tf-infra", ignore_errors=True)
