"""End-to-end: submit the training job to a real local Ray head with `ray job submit`.

Both input pipelines run; the gpu one runs its device code on the worker's CPU (the head has no GPU). A worker killed
after a checkpoint is replaced and the run resumes from that checkpoint; workers asking for a GPU the cluster never
gets fail the job after (--max-failures + 1) waits of --worker-wait-s, with one line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import ray_executable, ray_job_submit

from training.make_synthetic_data import make_dataset

NUM_IMAGES = 40


def job_info(ray_head, submission_id: str) -> dict:
    with urllib.request.urlopen(f"{ray_head['address']}/api/jobs/{submission_id}", timeout=30) as resp:
        return json.load(resp)


def job_logs(ray_head, submission_id: str) -> str:
    with urllib.request.urlopen(f"{ray_head['address']}/api/jobs/{submission_id}/logs", timeout=30) as resp:
        return json.load(resp)["logs"]


def submit(ray_head, submission_id: str, output_json: Path, *job_args: str, wait: bool = True, timeout: int = 300):
    """`ray job submit` of pytorch_training_e2e.py with --working-dir training, as the README does."""
    return ray_job_submit(ray_head, submission_id, ["python", "pytorch_training_e2e.py", *job_args],
                          runtime_env={"env_vars": {"TEST_OUTPUT_JSON": str(output_json)}}, wait=wait,
                          timeout=timeout)


def wait_for_job_end(ray_head, submission_id: str, timeout: float) -> dict:
    deadline = time.time() + timeout
    while True:
        job = job_info(ray_head, submission_id)
        if job["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
            return job
        if time.time() > deadline:
            subprocess.run([ray_executable(), "job", "stop", "--address", ray_head["address"], submission_id],
                           env=ray_head["env"], capture_output=True, timeout=60)
            pytest.fail(f"job {submission_id} still {job['status']} after {timeout} s:\n"
                        f"{job_logs(ray_head, submission_id)[-4000:]}")
        time.sleep(1)


@pytest.mark.ray
@pytest.mark.parametrize("pipeline", ["cpu", "gpu"])
def test_smoke_job_succeeds_on_local_ray(ray_head, tmp_path, pipeline):
    data_dir = tmp_path / "images"
    make_dataset(str(data_dir), NUM_IMAGES, (375, 500), seed=1)
    storage = tmp_path / "storage"
    storage.mkdir()
    output_json = tmp_path / "results.json"
    submission_id = f"training-smoke-{pipeline}-{uuid.uuid4().hex[:8]}"

    submit_job = submit(
        ray_head, submission_id, output_json, "--smoke-test",
        "--data-path", str(data_dir), "--storage-path", str(storage),
        "--num-workers", "1", "--no-use-gpu", "--weights", "none", "--num-epochs", "1",
        "--input-pipeline", pipeline,
    )
    logs = submit_job.stdout + submit_job.stderr
    job = job_info(ray_head, submission_id)
    assert job["status"] == "SUCCEEDED", f"job ended {job['status']}:\n{logs[-6000:]}"
    assert f"input pipeline {pipeline}, precision fp32, channels_last False" in logs
    assert submit_job.returncode == 0, logs[-6000:]

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
    assert (results["input_pipeline"], results["precision"], results["channels_last"]) == (pipeline, "fp32", False)

    # The checkpoint is a loadable ResNet18 state dict.
    import torch
    from torchvision.models import resnet18

    resnet18(weights=None).load_state_dict(torch.load(checkpoints[0], map_location="cpu"))


def train_worker_pids(ray_head) -> list[int]:
    from ray.util.state import list_actors

    actors = list_actors(address=ray_head["address"],
                         filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
    return [a.pid for a in actors]


@pytest.mark.ray
def test_lost_worker_resumes_from_its_last_checkpoint(ray_head, tmp_path):
    """Kill the training worker's process (a lost node, as far as Ray Train can tell) once the first epoch's
    checkpoint is registered: Ray Train starts a new worker, which continues after that epoch, and the job succeeds."""
    data_dir = tmp_path / "images"
    make_dataset(str(data_dir), 32, (375, 500), seed=2)
    storage = tmp_path / "storage"
    storage.mkdir()
    output_json = tmp_path / "results.json"
    submission_id = f"training-resume-{uuid.uuid4().hex[:8]}"
    submitted = submit(
        ray_head, submission_id, output_json, "--data-path", str(data_dir), "--storage-path", str(storage),
        "--num-workers", "1", "--no-use-gpu", "--weights", "none", "--num-epochs", "3", "--batch-size", "16",
        "--input-pipeline", "gpu", wait=False, timeout=120,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr

    # Ray Train writes its checkpoint manager's snapshot when it registers a checkpoint.
    deadline = time.time() + 240
    while not any("checkpoint_" in p.read_text() for p in storage.rglob("checkpoint_manager_snapshot.json")):
        assert job_info(ray_head, submission_id)["status"] in ("PENDING", "RUNNING"), \
            job_logs(ray_head, submission_id)[-6000:]
        assert time.time() < deadline, "no checkpoint registered within 240 s"
        time.sleep(0.5)
    pids = train_worker_pids(ray_head)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)

    job = wait_for_job_end(ray_head, submission_id, timeout=300)
    logs = job_logs(ray_head, submission_id)
    assert job["status"] == "SUCCEEDED", logs[-6000:]
    # Ray Train v2 shows each line of a worker twice in the job's logs (its print and its log record): compare sets.
    resumed = set(re.findall(r"worker 0: resuming from checkpoint (\S+): epoch (\d) of 3 done", logs))
    assert len(resumed) == 1, logs[-6000:]
    (checkpoint, done), = resumed
    done = int(done)
    assert 1 <= done < 3 and Path(checkpoint).parent.parent == storage
    # every epoch ran to its end once: the ones up to the checkpoint before the kill, the others after it
    ended = set(re.findall(r"worker 0 epoch (\d): \{'epoch': \d+, .*?'epoch_start_s': ([\d.]+)", logs))
    epochs = [int(epoch) for epoch, _ in ended]
    assert set(epochs) == {1, 2, 3} and all(epochs.count(e) == 1 for e in range(1, done + 1)), logs[-6000:]
    assert train_worker_pids(ray_head) == []  # the replacement finished too
    results = json.loads(output_json.read_text())
    assert results["max_failures"] == 3 and Path(results["checkpoint_path"], "model.pt").is_file()
    import torch

    state = torch.load(Path(results["checkpoint_path"]) / "train_state.pt", map_location="cpu")
    assert state["epoch"] == 2  # the last epoch, 0-based
    # three epochs checkpointed, the newest two kept (CHECKPOINTS_TO_KEEP)
    kept = sorted(p.parent for p in storage.rglob("model.pt"))
    assert len(kept) == 2 and Path(results["checkpoint_path"]) in kept, kept


@pytest.mark.ray
def test_gpus_that_never_come_fail_the_job_with_one_line(ray_head, tmp_path):
    """The local head has no GPU: --use-gpu workers can never start. Without the bound Ray Train retries forever; with
    it, each start waits --worker-wait-s and is retried --max-failures times."""
    data_dir = tmp_path / "images"
    make_dataset(str(data_dir), 4, (64, 64), seed=4)
    output_json = tmp_path / "results.json"
    submission_id = f"training-no-gpu-{uuid.uuid4().hex[:8]}"
    start = time.time()
    submitted = submit(
        ray_head, submission_id, output_json, "--data-path", str(data_dir), "--storage-path", str(tmp_path / "s"),
        "--use-gpu", "--weights", "none", "--worker-wait-s", "5", "--max-failures", "1", timeout=180,
    )
    elapsed = time.time() - start
    assert f"Job '{submission_id}' submitted successfully" in submitted.stdout, submitted.stdout + submitted.stderr
    logs = job_logs(ray_head, submission_id)
    assert job_info(ray_head, submission_id)["status"] == "FAILED", logs[-6000:]
    assert submitted.returncode != 0
    assert 10 <= elapsed < 120, f"took {elapsed:.0f} s"
    errors = [line for line in logs.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, logs[-6000:]
    assert ("did not get their resources ({GPU: 1} each) within --worker-wait-s 5 s, 2 time(s) "
            "(--max-failures 1 + 1)") in errors[0]
    # Ray Train's failure policy: the first timeout retried, the second raised
    decisions = re.findall(r"\[FailurePolicy\] (RETRY|RAISE)\n[^\n]*Source: controller", logs)
    assert decisions == ["RETRY", "RAISE"], logs[-6000:]
    assert not output_json.exists()
