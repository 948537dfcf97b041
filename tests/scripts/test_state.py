"""One state per deployment, for existing users: a deployment whose state is still at the path of releases before it
(``<local_dir>/<stack>.tfstate``, S3 ``<key_prefix>/<stack>.tfstate``) is refused before anything plans, `make
state-move` moves it (only this deployment's, never over a state at the new path), and the stacks then read it at the
new path. Local files through the synthesized infra stack and real terraform; S3 objects in the emulator's bucket."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

import scripts.tf as tf
from config import load_config
from tests.helpers import app_env, run_app, run_make, terraformrc


def _terraform(cwd: Path, *args: str) -> None:
    r = subprocess.run(["terraform", *args, "-no-color"], cwd=cwd, capture_output=True, text=True, timeout=300,
                       env={**app_env(), "CHECKPOINT_DISABLE": "1"})
    assert r.returncode == 0, r.stderr


def _legacy_state(path: Path, outputs: dict) -> None:
    """A state at ``path`` written by real terraform, holding ``outputs`` (what an older release's stack left)."""
    maker = path.parent / f".maker-{path.stem}"
    maker.mkdir(parents=True)
    (maker / "main.tf.json").write_text(json.dumps({
        "terraform": {"backend": {"local": {"path": str(path)}}},
        "output": {k: {"value": v} for k, v in outputs.items()}}))
    _terraform(maker, "init", "-input=false")
    _terraform(maker, "apply", "-auto-approve", "-input=false")


def _config(tmp: Path, **data) -> Path:
    path = tmp / f"{data.get('name', 'default')}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_local_state_at_the_old_path_is_refused_then_moved(tmp_path, monkeypatch):
    state_dir = tmp_path / "state"
    config = _config(tmp_path, backend={"type": "local", "local_dir": str(state_dir)})
    legacy = {"cluster_name": "ray-eks", "region": "us-west-2", "vpc_id": "vpc-0a1b2c3d4e5f60718"}
    _legacy_state(state_dir / "infra.tfstate", legacy)
    _legacy_state(state_dir / "ray.tfstate", {"namespace": "ray"})
    outdir = tmp_path / "cdktf.out"
    assert run_app(config=config, outdir=outdir).returncode == 0
    rc = terraformrc(tmp_path)
    if rc:
        monkeypatch.setenv("TF_CLI_CONFIG_FILE", rc)
    monkeypatch.setattr(tf, "TERRAFORM_HOME", tmp_path / "build" / "terraform")
    cfg = load_config(str(config))
    runner = tf.Terraform(cfg, outdir)

    # Before the move: this deployment's state is at the old path, and the new one is empty: refused, in one line.
    with pytest.raises(tf.TerraformError) as refused:
        runner.guard("infra")
    assert str(refused.value) == (
        f"deployment ray-eks (us-west-2) has its infra state at the path before one state per deployment "
        f"({state_dir / 'infra.tfstate'}): run `make state-move` first (docs/deploy.md, \"One state per deployment\")")

    moved = run_make("state-move", env=app_env(config=config))
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines() == [
        f"moved {state_dir / 'infra.tfstate'} -> {state_dir / 'ray-eks/us-west-2/infra.tfstate'}",
        f"moved {state_dir / 'ray.tfstate'} -> {state_dir / 'ray-eks/us-west-2/ray.tfstate'}"]
    assert not (state_dir / "infra.tfstate").exists()
    # The infra stack reads it at its new path, and plans go on.
    runner.guard("infra")
    assert runner.outputs("infra") == legacy
    again = run_make("state-move", env=app_env(config=config))
    assert again.returncode == 0 and "nothing to move" in again.stdout


def test_only_this_deployments_state_is_moved(tmp_path):
    state_dir = tmp_path / "state"
    _legacy_state(state_dir / "infra.tfstate", {"cluster_name": "ray-eks", "region": "us-west-2"})
    other = _config(tmp_path, name="ray-two", backend={"type": "local", "local_dir": str(state_dir)})
    r = run_make("state-move", env=app_env(config=other))
    assert r.returncode != 0 and (state_dir / "infra.tfstate").is_file()
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert line == (f"error: {state_dir / 'infra.tfstate'} belongs to ray-eks (us-west-2), not to this config's "
                    f"ray-two (us-west-2): run `make state-move` with that deployment's config (RAY_EKS_CONFIG)")
    # Nor over a state already at the new path.
    mine = _config(tmp_path, backend={"type": "local", "local_dir": str(state_dir)})
    _legacy_state(state_dir / "ray-eks" / "us-west-2" / "infra.tfstate", {"cluster_name": "ray-eks"})
    r = run_make("state-move", env=app_env(config=mine))
    assert r.returncode != 0 and "keep the one that holds the deployment" in r.stderr


def test_s3_states_move_to_the_deployments_keys(emulator, tmp_path):
    s3 = emulator.client("s3", region="us-west-2")
    bucket = "ray-eks-tfstate-move"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    infra = {"version": 4, "outputs": {"cluster_name": {"value": "ray-eks", "type": "string"},
                                       "region": {"value": "us-west-2", "type": "string"}}, "resources": []}
    s3.put_object(Bucket=bucket, Key="team/infra.tfstate", Body=json.dumps(infra).encode())
    s3.put_object(Bucket=bucket, Key="team/ray-cluster.tfstate", Body=b'{"version": 4, "resources": []}')
    config = _config(tmp_path, endpoints={"url": emulator.url},
                     backend={"type": "s3", "bucket": bucket, "key_prefix": "team"})
    r = run_make("state-move", env=app_env(config=config))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"moved s3://{bucket}/team/infra.tfstate -> s3://{bucket}/team/ray-eks/us-west-2/infra.tfstate",
        f"moved s3://{bucket}/team/ray-cluster.tfstate -> s3://{bucket}/team/ray-eks/us-west-2/ray-cluster.tfstate"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["team/ray-eks/us-west-2/infra.tfstate", "team/ray-eks/us-west-2/ray-cluster.tfstate"]
    moved = s3.get_object(Bucket=bucket, Key="team/ray-eks/us-west-2/infra.tfstate")
    assert json.loads(moved["Body"].read()) == infra and moved.get("ServerSideEncryption")
    # The old keys' history stays in the versioned bucket.
    versions = s3.list_object_versions(Bucket=bucket, Prefix="team/infra.tfstate")
    assert versions.get("Versions") and versions.get("DeleteMarkers")
