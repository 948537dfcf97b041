"""A real Ray head on this machine, on 127.0.0.1 and free ports, in a temp dir of its own; stopped by process id.

Used by scripts/derive_metric_names.py (the Ray metric names a head exports) and by tests/observability (a real
Prometheus scraping a real head). ``ray stop`` is never called: it stops every Ray process of the user, and other
heads on the machine are not ours to stop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

# The autoscaler's and the dashboard's own metrics ports of a head: 44217 and 44227 unless these variables say
# otherwise (ray 2.58.0 autoscaler/_private/constants.py, dashboard/consts.py). KubeRay's head uses the defaults;
# a local head gets free ports, so that it never collides with another head on the machine.
METRIC_PORT_ENV = ("AUTOSCALER_METRIC_PORT", "DASHBOARD_METRIC_PORT")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_under(temp_dir: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmdline:
            pids.append(int(entry.name))
    return pids


def ray_env() -> dict[str, str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               # The dashboard's modules each start a process and get 30 s to report ready; on a loaded 2-core machine
               # (the test suite runs beside its own synths) MetricsHead has missed that, failing `ray start`.
               RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT="180")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@dataclass(frozen=True)
class LocalHead:
    gcs_address: str
    dashboard_url: str
    metrics_port: int  # --metrics-export-port: the node's own metrics (tasks, memory, object store, ...)
    temp_dir: str
    autoscaler_metrics_port: int
    dashboard_metrics_port: int

    @property
    def metrics_ports(self) -> list[int]:
        """Every port the head serves Prometheus metrics on, as KubeRay's head pod exposes them."""
        return [self.metrics_port, self.autoscaler_metrics_port, self.dashboard_metrics_port]

    def run(self, code: str, timeout: int = 600) -> subprocess.CompletedProcess:
        """Python ``code`` as a driver of this head (``ADDRESS`` holds the GCS address)."""
        return subprocess.run([sys.executable, "-c", f"ADDRESS = {self.gcs_address!r}\n{code}"], env=ray_env(),
                              capture_output=True, text=True, timeout=timeout)


def scrape(port: int, timeout: float = 5) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        return r.read().decode()


def metric_names(text: str) -> set[str]:
    """The sample names of a Prometheus text exposition."""
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"}


def log_tail(temp_dir: str, lines: int = 15) -> str:
    """The last lines of a head's agent, raylet and GCS logs: what a failed job submission needs to be explained."""
    out = []
    for name in ("dashboard_agent.log", "dashboard_agent.err", "raylet.out", "gcs_server.out"):
        for path in Path(temp_dir).glob(f"session_latest/logs/{name}"):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
    return "\n".join(out)


def _stop(temp_dir: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_under(temp_dir):
            with suppress(OSError):
                os.kill(pid, sig)
        deadline = time.time() + 20
        while pids_under(temp_dir) and time.time() < deadline:
            time.sleep(0.5)


@contextmanager
def local_ray_head(num_cpus: int = 2, ready_timeout: float = 90, attempts: int = 3) -> Iterator[LocalHead]:
    """Ray's raylet must register within a fixed 30 s (ray/_private/node.py): on a loaded machine `ray start` can
    time out, so it is tried ``attempts`` times, each in a fresh temp dir on fresh ports."""
    ray = str(Path(sys.executable).parent / "ray")
    temp_dir = ""
    try:
        for attempt in range(1, attempts + 1):
            temp_dir = tempfile.mkdtemp(prefix="rm-", dir="/tmp")  # short: Ray's socket paths stay < ~107 chars
            gcs, dashboard, metrics, autoscaler_m, dashboard_m, agent, client = (free_port() for _ in range(7))
            env = {**ray_env(), METRIC_PORT_ENV[0]: str(autoscaler_m), METRIC_PORT_ENV[1]: str(dashboard_m)}
            # Every port of its own: the job agent's 52365 and the client server's 10001 are fixed by default, and a
            # head stopped just before (or any ray.init() on the machine) may still hold them -- the new agent then
            # runs without its HTTP server and every job submission fails with "No available agent".
            r = subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
                                "--include-dashboard", "true",
                                "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                                "--dashboard-agent-listen-port", str(agent), "--ray-client-server-port", str(client),
                                "--metrics-export-port", str(metrics), "--temp-dir", temp_dir,
                                "--num-cpus", str(num_cpus), "--num-gpus", "0", "--disable-usage-stats"],
                               env=env, capture_output=True, text=True, timeout=180)
            if r.returncode == 0:
                break
            _stop(temp_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)
            if attempt == attempts:
                raise RuntimeError(f"ray start failed {attempts} times:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        head = LocalHead(f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}", metrics, temp_dir, autoscaler_m,
                         dashboard_m)
        deadline = time.time() + ready_timeout
        while True:
            try:
                if metric_names(scrape(metrics)):
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the head's metrics port {metrics} served nothing within {ready_timeout:.0f} s")
            time.sleep(1)
        yield head
    finally:
        if temp_dir:
            _stop(temp_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)


def service_discovery(head: LocalHead) -> list[dict]:
    """Ray's own file_sd targets for this session (what Ray's generated prometheus.yml scrapes)."""
    path = Path(head.temp_dir) / "session_latest" / "prom_metrics_service_discovery.json"
    return json.loads(path.read_text()) if path.is_file() else []
