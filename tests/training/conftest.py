"""Fixtures for the training-job tests: a real local Ray head on 127.0.0.1, the `ray` marker."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_DIR = REPO_ROOT / "training"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def ray_executable() -> str:
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.fail(f"the `ray` CLI was not found next to {sys.executable}")
    return str(ray)


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        # Ray's workers and the job driver must not pick up a proxy for 127.0.0.1.
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        # The dashboard's modules each start a process and get 30 s to report ready; on a loaded 2-core machine
        # (the suite runs beside its own synths) MetricsHead has missed that, failing `ray start`.
        RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT="180",
    )
    # The job entrypoint runs `python ...`: make that the interpreter running the tests.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_processes_under(temp_dir: str) -> list:
    """PIDs of processes whose command line mentions our Ray temp dir."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session")
def ray_head():
    """A real single-node Ray head listening on 127.0.0.1 only, with the dashboard (job API)."""
    ray = ray_executable()
    # Short path: Ray's unix socket paths must stay under ~107 characters.
    temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    gcs_port, dashboard_port = free_port(), free_port()
    env = subprocess_env()
    start = subprocess.run(
        [ray, "start", "--head", "--node-ip-address", "127.0.0.1",
         "--port", str(gcs_port), "--include-dashboard", "true",
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
         "--temp-dir", temp_dir, "--num-cpus", "4", "--num-gpus", "0",
         "--disable-usage-stats"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        assert start.returncode == 0, f"ray start failed:\n{start.stdout}\n{start.stderr}"
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{address}/api/version", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("the Ray dashboard did not answer within 60 s")
            time.sleep(1)
        yield {"address": address, "temp_dir": temp_dir, "env": env}
    finally:
        # Our head's processes only, by their ids: `ray stop` ends every Ray process of this user on the machine,
        # the Ray heads of tests running beside this one included.
        for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 15)):
            for pid in ray_processes_under(temp_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.time() + wait_s
            while ray_processes_under(temp_dir) and time.time() < deadline:
                time.sleep(0.5)
        leftover = ray_processes_under(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not leftover, f"Ray processes still running after SIGKILL: {leftover}"
