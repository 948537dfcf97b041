"""CLI validation of the job, the results JSON, the image build files and the data generator."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO_ROOT, TRAINING_DIR, subprocess_env

from config.versions import RAY_VERSION
from training import pytorch_training_e2e as job

SCRIPT = TRAINING_DIR / "pytorch_training_e2e.py"


def run_script(*args, cwd=TRAINING_DIR, **env):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=subprocess_env(**env),
        capture_output=True, text=True, timeout=120,
    )


# --- CLI -------------------------------------------------------------------

def test_defaults_match_original():
    args = job.parse_args([])
    assert (args.data_size_gb, args.num_epochs, args.num_workers) == (1, 2, 1)
    assert args.smoke_test is False and args.use_gpu is True
    assert args.storage_path == "/ray/export"
    assert args.batch_size == 64 and args.weights == "imagenet"
    assert job.resolve_data_path(args) == (
        "s3://anonymous@air-example-data-2/1G-image-data-synthetic-raw", True)
    args = job.parse_args(["--data-size-gb", "10"])
    assert job.resolve_data_path(args)[0].endswith("/10G-image-data-synthetic-raw")


def test_smoke_test_defaults_to_cpu_and_one_image():
    args = job.parse_args(["--smoke-test"])
    assert args.use_gpu is False
    assert job.resolve_data_path(args) == (
        ["s3://anonymous@air-example-data-2/1G-image-data-synthetic-raw/dog.jpg"], True)
    assert job.parse_args(["--smoke-test", "--use-gpu"]).use_gpu is True
    assert job.parse_args(["--no-use-gpu"]).use_gpu is False
    args = job.parse_args(["--smoke-test", "--data-path", "/fsx/images"])
    assert job.resolve_data_path(args) == ("/fsx/images", False)


@pytest.mark.parametrize("argv,message", [
    (["--num-workers", "0"], "--num-workers must be >= 1"),
    (["--num-epochs", "0"], "--num-epochs must be >= 1"),
    (["--batch-size", "-1"], "--batch-size must be >= 1"),
    (["--weights", "resnet50"], "invalid choice"),
])
def test_invalid_arguments_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        job.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_help_runs_as_plain_file():
    result = run_script("--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--data-size-gb", "--num-epochs", "--num-workers", "--smoke-test", "--data-path",
                 "--storage-path", "--use-gpu", "--no-use-gpu", "--batch-size", "--weights"):
        assert flag in result.stdout


def test_imagenet_weights_unavailable_gives_one_clear_message(tmp_path):
    """No internet (and a dead proxy, in case there is): exit 2 with advice, before touching Ray."""
    torch_home = tmp_path / "torch-home"
    torch_home.mkdir()
    result = run_script(
        "--smoke-test", "--weights", "imagenet", "--data-path", str(tmp_path),
        TORCH_HOME=str(torch_home), HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
        RAY_ADDRESS="http://127.0.0.1:9",  # must fail before any Ray connection
    )
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, result.stderr
    assert "--weights none" in errors[0] and "resnet18" in errors[0].lower()
    assert "Traceback" not in result.stderr
    assert not list(torch_home.rglob("*.pth")), "no (partial) weights file may be left behind"


# --- results JSON ------------------------------------------------------------

RESULTS_SCHEMA = {
    "type": "object",
    "required": ["data_size_gb", "num_epochs", "perf_metrics"],
    "properties": {
        "data_size_gb": {"type": "integer"},
        "num_epochs": {"type": "integer"},
        "perf_metrics": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["perf_metric_name", "perf_metric_value", "perf_metric_type"],
                "properties": {
                    "perf_metric_name": {"type": "string"},
                    "perf_metric_value": {"type": "number"},
                    "perf_metric_type": {"enum": ["LATENCY", "THROUGHPUT"]},
                },
            },
        },
    },
}


def test_results_structure_keeps_original_keys():
    args = job.parse_args(["--num-epochs", "3", "--data-size-gb", "2"])
    results = job.build_results(args, 100.0, 2048.0, "nominal", "s3://x", None)
    jsonschema.validate(json.loads(json.dumps(results)), RESULTS_SCHEMA)
    metrics = {m["perf_metric_name"]: m["perf_metric_value"] for m in results["perf_metrics"]}
    # same formula as the original: epochs * GB * 1024 / seconds
    assert metrics == {"total_time_s": 100.0, "throughout_MB_s": 61.44, "throughput_MB_s": 61.44}
    assert [m["perf_metric_name"] for m in results["perf_metrics"]][:2] == [
        "total_time_s", "throughout_MB_s"]


# --- image build files ---------------------------------------------------------

def test_dockerfile_base_is_the_configured_ray_image():
    """The local default base (make image) is the deploy's: the GPU deployment's rayproject/ray at ray_version."""
    from config import AppConfig

    dockerfile = (TRAINING_DIR / "Dockerfile").read_text()
    arg = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert arg and arg.group(1) == AppConfig().stock_ray_image == f"rayproject/ray:{RAY_VERSION}-py311-cu130"
    assert re.findall(r"^FROM\s+(\S+)", dockerfile, re.M) == ["${BASE_IMAGE}"], "the build passes BASE_IMAGE"
    assert "ray-ml" not in dockerfile
    assert "pip install --no-cache-dir --require-hashes -r /home/ray/training/requirements.lock" in dockerfile
    assert re.search(r"^COPY --chown=ray:users \*\.py /home/ray/training/$", dockerfile, re.M)


def test_tested_ray_matches_the_configured_ray():
    import ray

    assert ray.__version__ == RAY_VERSION


def make_stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_build_and_push_script_uses_the_deployments_repository(tmp_path):
    """Run the script against stub aws/docker, with the repository and region `make image` reads from the deployed
    infra stack (scripts/infra_outputs.py), and check what it would do."""
    script = TRAINING_DIR / "build_and_push_image.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    make_stub(bin_dir, "aws", f'echo "aws $*" >> {log}; echo fake-password\n')
    stdin = tmp_path / "login-stdin"
    make_stub(bin_dir, "docker", f'echo "docker $*" >> {log}; [ "$1" != login ] || cat > {stdin}\n')
    repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ray-training"
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE_TAG", "BASE_IMAGE")}
    env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", ECR_REPOSITORY_URL=repo, REGION="eu-west-1")

    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = log.read_text()
    assert "aws ecr get-login-password --region eu-west-1" in calls
    # aws and docker run concurrently in a pipe: their log lines may come in either order
    assert "docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com" in calls
    assert stdin.read_text().strip() == "fake-password"
    tag = f"{RAY_VERSION}-py311-cu130"  # the default base image's tag
    assert f"--build-arg BASE_IMAGE=rayproject/ray:{tag}" in calls and f"--tag {repo}:{tag}" in calls
    assert calls.rstrip().endswith(f"docker push {repo}:{tag}")

    env["IMAGE_TAG"] = "custom-1"
    log.unlink()
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and f"docker push {repo}:custom-1" in log.read_text()

    del env["ECR_REPOSITORY_URL"]
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and result.stderr.strip() == (
        "error: ECR_REPOSITORY_URL and REGION are not set: run 'make image' (it reads them from the deployed infra "
        "stack)")


# --- synthetic data -------------------------------------------------------------

def test_make_synthetic_data_command(tmp_path):
    from PIL import Image

    out = tmp_path / "imgs"
    result = subprocess.run(
        [sys.executable, "-m", "training.make_synthetic_data", "--out", str(out),
         "--count", "20", "--size", "375x500"],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(out.iterdir())
    assert len(files) == 20
    modes = {}
    for f in files:
        with Image.open(f) as im:
            assert im.size == (375, 500)
            modes[im.mode] = modes.get(im.mode, 0) + 1
    assert modes["RGB"] >= 16 and modes.get("L") and modes.get("RGBA")
    bad = subprocess.run(
        [sys.executable, "-m", "training.make_synthetic_data", "--out", str(out), "--size", "big"],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr
