"""A real Prometheus (Debian's package) scraping a real local Ray head on loopback, as kube-prometheus-stack's
PodMonitor scrapes the head in the cluster: the head's three metrics ports, with the ray_io_cluster label our
PodMonitor's relabeling sets. Used by tests/observability/test_prometheus_ray.py and scripts/render_dashboard.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from scripts.local_ray import LocalHead, free_port


@dataclass(frozen=True)
class LivePrometheus:
    url: str

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr, **({"time": str(at)} if at else {})}
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
        with urllib.request.urlopen(f"{self.url}/api/v1/query_range?{urllib.parse.urlencode(params)}",
                                    timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def targets_up(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as r:
            return [t for t in json.load(r)["data"]["activeTargets"] if t["health"] == "up"]


@contextmanager
def prometheus_scraping(prometheus_bin: str, head: LocalHead, cluster_label: str,
                        interval: str = "2s") -> Iterator[LivePrometheus]:
    work = tempfile.mkdtemp(prefix="prom-")
    port = free_port()
    config = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
              "scrape_configs": [{"job_name": "ray", "static_configs": [{
                  "targets": [f"127.0.0.1:{p}" for p in head.metrics_ports],
                  "labels": {"ray_io_cluster": cluster_label}}]}]}
    with open(f"{work}/prometheus.yml", "w") as f:
        yaml.safe_dump(config, f)
    log_path = Path(work) / "prometheus.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([prometheus_bin, f"--config.file={work}/prometheus.yml",
                                 f"--storage.tsdb.path={work}/data", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=log)
    live = LivePrometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.time() + 60
        while True:
            try:
                if len(live.targets_up()) == len(head.metrics_ports):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                tail = log_path.read_text()[-2000:]
                raise RuntimeError(f"Prometheus did not scrape the head's {len(head.metrics_ports)} ports:\n{tail}")
            time.sleep(1)
        yield live
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
