"""benchmarks/training_limit.py in its CPU mode, for real: a tiny data set, a local Ray cluster, the job's own training
loop for (b) and (c), the ceiling on synthetic tensors for (a); and the GPU check script that runs it on a GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = REPO_ROOT / "benchmarks" / "training_limit.py"


def env() -> dict:
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@pytest.mark.ray
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="Ray Data and the training worker need 2 CPUs")
def test_cpu_mode_measures_the_three_runs(tmp_path):
    out, md = tmp_path / "limit.json", tmp_path / "limit.md"
    args = ["--device", "cpu", "--cpus", "2", "--images", "12", "--original-images", "8", "--unique-images", "3",
            "--size", "96x64", "--epochs", "2", "--batch-size", "4", "--ceiling-steps", "2",
            "--object-store-gib", "0.3"]
    result = subprocess.run([sys.executable, str(BENCHMARK), *args, "--out", str(out), "--markdown", str(md)],
                            cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert set(runs) == {"ceiling", "original", "ours"}  # no fp32 ceiling and no GPU sampling on CPU
    for name in ("ceiling", "original", "ours"):
        assert runs[name]["images_per_s"] > 0, runs[name]
        assert runs[name]["gpu"] is None
    assert runs["ceiling"]["images"] == 2 * 4 and runs["ceiling"]["precision"] == "fp32"
    # (b): the original pipeline in the CPU tasks, fp32; (c): the job's gpu pipeline, run here on the CPU device
    assert (runs["original"]["input_pipeline"], runs["original"]["precision"]) == ("cpu", "fp32")
    assert (runs["ours"]["input_pipeline"], runs["ours"]["precision"], runs["ours"]["channels_last"]) == \
        ("gpu", "fp32", False)
    assert (runs["original"]["images_per_epoch"], runs["ours"]["images_per_epoch"]) == (8, 12)
    assert runs["ours"]["steady_epochs"] == 1 and len(runs["ours"]["epoch_images_per_s"]) == 2
    summary = report["summary"]
    assert summary["ours_vs_original"] == pytest.approx(
        runs["ours"]["images_per_s"] / runs["original"]["images_per_s"], rel=1e-2)
    assert summary["ours_vs_ceiling"] == pytest.approx(
        runs["ours"]["images_per_s"] / runs["ceiling"]["images_per_s"], rel=1e-2)
    eq = report["equivalence"]
    assert eq["images"] == eq["decoded_on_device"] == 16 and eq["max_levels"] <= 1.001
    assert report["environment"]["cpus"] == sorted(os.sched_getaffinity(0))[:2]
    text = md.read_text()
    for row in ("| (a) ceiling |", "| (b) original |", "| (c) ours |"):
        assert row in text
    assert "(c)/(b) = **" in text and "(c)/(a) = **" in text and "CPU mode: " in text
    assert "page-cached" in text and "in our training loop" in text
    assert report["command"].startswith("python benchmarks/training_limit.py --device cpu --cpus 2")
    assert "--out" not in report["command"]


def test_more_cpus_than_allowed_is_one_line(tmp_path):
    too_many = len(os.sched_getaffinity(0)) + 1
    result = subprocess.run([sys.executable, str(BENCHMARK), "--device", "cpu", "--cpus", str(too_many)],
                            cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"ERROR: --cpus {too_many}, but this process may use")


def test_gpu_sampler_window():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        from training_limit import GpuSampler
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    sampler = GpuSampler()
    sampler.samples = [(10.0, 50.0, 1000.0), (10.2, 100.0, 1200.0), (10.4, 0.0, 900.0), (11.0, 100.0, 5000.0)]
    assert sampler.window(10.0, 10.5) == {"util_mean_pct": 50.0, "util_max_pct": 100.0, "memory_max_mib": 1200,
                                          "samples": 3}
    assert sampler.window(20.0, 21.0) is None


@pytest.mark.parametrize("script", ["gpu_training_check.sh", "prepare_gpu_bundle.sh"])
def test_gpu_scripts_parse(script):
    path = REPO_ROOT / "benchmarks" / script
    assert os.access(path, os.X_OK)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    if shutil.which("shellcheck"):
        check = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_gpu_check_without_the_bundle_says_what_to_do(tmp_path):
    result = subprocess.run(["bash", str(REPO_ROOT / "benchmarks" / "gpu_training_check.sh")],
                            env={**env(), "BUNDLE": str(tmp_path / "missing"), "OUT": str(tmp_path / "out")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"ERROR: no {tmp_path / 'missing'}/ray-slim.tar.xz: run "
                                     f"benchmarks/prepare_gpu_bundle.sh here first and carry {tmp_path / 'missing'}")


def test_markdown_of_a_gpu_report():
    """The GPU rows (fp32 ceiling, progressive run, utilisation) that the CPU mode cannot produce."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        from training_limit import markdown
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    gpu = {"util_mean_pct": 97.4, "util_max_pct": 100.0, "memory_max_mib": 5000, "samples": 40}
    job_row = {"images_per_epoch": 8192, "precision": "bf16", "channels_last": True, "gpu": gpu}
    report = {
        "command": "python benchmarks/training_limit.py --cpus 3 --progressive", "image_size": "375x500",
        "batch_size": 64,
        "environment": {"gpu": "NVIDIA H100 80GB HBM3", "driver": "580.159.04", "cuda": "13.0", "torch": "2.11.0",
                        "torchvision": "0.26.0", "ray": "2.58.0", "python": "3.12.3", "cpus": [0, 1, 2],
                        "cpu_model": "x"},
        "runs": {"ceiling": {"images_per_s": 4000.0, "precision": "bf16", "channels_last": True, "gpu": gpu},
                 "ceiling_fp32": {"images_per_s": 2000.0, "gpu": gpu},
                 "original": {**job_row, "images_per_s": 250.0, "images_per_epoch": 2048},
                 "ours": {**job_row, "images_per_s": 3000.0},
                 "ours_progressive": {**job_row, "images_per_s": 400.0, "images_per_epoch": 2048}},
        "summary": {"ours_vs_original": 12.0, "ours_vs_ceiling": 0.75},
        "equivalence": {"images": 16, "decoded_on_device": 16, "max_levels": 2.0, "mean_levels": 0.3},
    }
    text = markdown(report)
    assert "on NVIDIA H100 80GB HBM3 (driver 580.159.04, CUDA 13.0)" in text
    assert "| (a-fp32) | the same in fp32, NCHW | 2000 | 97% (max 100%) | 50% |" in text
    assert "| (c) ours | file reads on the CPUs; decode (nvJPEG), resize, crop, normalise on the GPU; bf16, " \
           "channels_last True (8192 images/epoch) | 3000 | 97% (max 100%) | 75% |" in text
    # what the numbers do not include: the job's storage latency, the original job's own training loop
    assert "read from a local directory the run has just written (page-cached: no disk or network reads)" in text
    assert "| (b) original | read_images + per-image torchvision transforms on the CPUs, fp32, in our training loop " \
           "(faster than the original's) (2048 images/epoch) | 250 |" in text
    assert "(2048 images/epoch) | 400 |" in text
    assert "(c)/(b) = **12.00×** (goal ≥ 2×: met); (c)/(a) = **75%** (goal ≥ 70%: met)." in text
    assert "CPU mode" not in text
