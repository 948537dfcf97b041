"""Fixtures for the training-job tests: a real local Ray head on 127.0.0.1, the `ray` marker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_DIR = REPO_ROOT / "training"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from scripts.local_ray import local_ray_head, log_tail, pids_under, ray_env  # noqa: E402


def ray_executable() -> str:
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.fail(f"the `ray` CLI was not found next to {sys.executable}")
    return str(ray)


def subprocess_env(**extra: str) -> dict:
    """Ray's environment for a local head and its jobs (scripts/local_ray.py): the job entrypoint's `python` is the
    interpreter running the tests."""
    env = ray_env()
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def ray_head():
    """A real single-node Ray head listening on 127.0.0.1, with the dashboard (job API) and its job agent."""
    with local_ray_head(num_cpus=4) as head:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{head.dashboard_url}/api/version", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("the Ray dashboard did not answer within 60 s")
            time.sleep(1)
        yield {"address": head.dashboard_url, "temp_dir": head.temp_dir, "env": subprocess_env()}
    leftover = pids_under(head.temp_dir)
    assert not leftover, f"Ray processes still running after SIGKILL: {leftover}"


def ray_job_submit(ray_head, submission_id: str, entrypoint: list[str], *, runtime_env: dict | None = None,
                   wait: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    """`ray job submit --working-dir training`, as the README does. A head just started on a loaded machine may not
    have its job agent yet (the submission did not happen): retried for 2 minutes, then the head's logs are added to
    the output so that a failure says why."""
    deadline = time.time() + 120
    while True:
        submitted = subprocess.run(
            [ray_executable(), "job", "submit", "--address", ray_head["address"],
             "--submission-id", submission_id, *([] if wait else ["--no-wait"]),
             "--working-dir", str(TRAINING_DIR),
             *(["--runtime-env-json", json.dumps(runtime_env)] if runtime_env else []),
             "--", *entrypoint],
            env=ray_head["env"], capture_output=True, text=True, timeout=timeout,
        )
        if "No available agent to submit job" not in submitted.stderr:
            return submitted
        if time.time() > deadline:
            submitted.stderr += "\nthe head's logs:\n" + log_tail(ray_head["temp_dir"])
            return submitted
        time.sleep(2)
