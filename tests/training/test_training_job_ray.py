"""End-to-end: submit the training job to a real local Ray head with `ray job submit`."""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import TRAINING_DIR, ray_executable

from training.make_synthetic_data import make_dataset

NUM_IMAGES = 40


@pytest.mark.ray
def test_smoke_job_succeeds_on_local_ray(ray_head, tmp_path):
    data_dir = tmp_path / "images"
    make_dataset(str(data_dir), NUM_IMAGES, (375, 500), seed=1)
    storage = tmp_path / "storage"
    storage.mkdir()
    output_json = tmp_path / "results.json"
    submission_id = f"training-smoke-{uuid.uuid4().hex[:8]}"
    ray = ray_executable()

    submit = subprocess.run(
        [ray, "job", "submit", "--address", ray_head["address"],
         "--submission-id", submission_id,
         "--working-dir", str(TRAINING_DIR),
         "--runtime-env-json", json.dumps({"env_vars": {"TEST_OUTPUT_JSON": str(output_json)}}),
         "--", "python", "pytorch_training_e2e.py", "--smoke-test",
         "--data-path", str(data_dir), "--storage-path", str(storage),
         "--num-workers", "1", "--no-use-gpu", "--weights", "none", "--num-epochs", "1"],
        env=ray_head["env"], capture_output=True, text=True, timeout=300,
    )
    logs = submit.stdout + submit.stderr
    with urllib.request.urlopen(f"{ray_head['address']}/api/jobs/{submission_id}", timeout=30) as resp:
        job = json.load(resp)
    assert job["status"] == "SUCCEEDED", f"job ended {job['status']}:\n{logs[-6000:]}"
    assert submit.returncode == 0, logs[-6000:]

    checkpoints = list(storage.rglob("model.pt"))
    assert checkpoints, f"no checkpoint under {storage}: {sorted(map(str, storage.rglob('*')))[:50]}"

    results = json.loads(output_json.read_text())
    assert results["num_epochs"] == 1
    assert results["data_size_gb"] == 1
    metrics = {m["perf_metric_name"]: m for m in results["perf_metrics"]}
    assert set(metrics) >= {"total_time_s", "throughout_MB_s", "throughput_MB_s"}
    assert metrics["total_time_s"]["perf_metric_type"] == "LATENCY"
    assert metrics["total_time_s"]["perf_metric_value"] > 0
    for key in ("throughout_MB_s", "throughput_MB_s"):
        assert metrics[key]["perf_metric_type"] == "THROUGHPUT"
        assert metrics[key]["perf_metric_value"] > 0
    # the measured input size, not the nominal --data-size-gb
    expected_mb = sum(p.stat().st_size for p in data_dir.iterdir()) / 1024**2
    assert results["data_size_source"] == "measured"
    assert results["data_size_mb"] == pytest.approx(expected_mb, rel=1e-3)
    assert results["checkpoint_path"] and Path(results["checkpoint_path"]).is_dir()
    assert (Path(results["checkpoint_path"]) / "model.pt").is_file()
    assert results["use_gpu"] is False and results["weights"] == "none"

    # The checkpoint is a loadable ResNet18 state dict.
    import torch
    from torchvision.models import resnet18

    resnet18(weights=None).load_state_dict(torch.load(checkpoints[0], map_location="cpu"))
