"""A real Prometheus scraping a real local Ray head (loopback, free ports, our own temp dir; everything stopped by
process id): every Ray metric our dashboards and alerts read returns series, with the labels they select on."""

from __future__ import annotations

import time

import pytest

from config import load_config
from observability.promql import metric_names
from scripts.derive_metric_names import read_names
from scripts.local_prometheus import prometheus_scraping
from scripts.local_ray import local_ray_head
from tests.helpers import ROOT

from .test_metric_names import our_expressions

pytestmark = pytest.mark.ray  # a real Ray head (tests/conftest.py: one xdist worker runs them all)

WORKLOAD = '''
import ray
ray.init(address=ADDRESS)
@ray.remote
def f(x):
    return x
assert ray.get([f.remote(i) for i in range(20)]) == list(range(20))
'''


@pytest.fixture(scope="module")
def live(prometheus_bin):
    with local_ray_head() as head:
        r = head.run(WORKLOAD, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        with prometheus_scraping(prometheus_bin, head, "kuberay") as prom:
            yield prom


def ray_names_we_read() -> set[str]:
    ray = read_names("ray")
    cfg = load_config(str(ROOT / "config" / "examples" / "prod-gpu.yaml"))
    return {n for exprs in our_expressions(cfg).values() for e in exprs for n in metric_names(e) if n in ray}


def test_every_ray_metric_we_read_has_series(live):
    names = ray_names_we_read()
    assert {"ray_node_cgroup_mem_used", "ray_node_cgroup_mem_total", "autoscaler_active_nodes",
            "autoscaler_pending_nodes"} <= names
    missing = set(names)
    deadline = time.time() + 90  # Ray's reporter exports every few seconds; the autoscaler's after its first pass
    while missing and time.time() < deadline:
        missing = {n for n in missing if not live.query(f'{n}{{ray_io_cluster="kuberay"}}')}
        time.sleep(2)
    assert sorted(missing) == []


def test_the_head_memory_selector_matches_the_live_head(live):
    """The labels our head queries select on (RayNodeType="head", ray_io_cluster) are the ones Ray sets."""
    expr = ('max(ray_node_cgroup_mem_used{ray_io_cluster="kuberay", RayNodeType="head"}) / '
            'max(ray_node_cgroup_mem_total{ray_io_cluster="kuberay", RayNodeType="head"})')
    deadline = time.time() + 60
    result = live.query(expr)
    while not result and time.time() < deadline:
        time.sleep(2)
        result = live.query(expr)
    assert result and 0 < float(result[0]["value"][1]) < 1
    assert live.query('ray_node_cgroup_mem_used{RayNodeType="worker"}') == []  # a head alone


def test_a_name_ray_does_not_export_has_no_series(live):
    assert live.query('ray_node_cgroup_memory_used{ray_io_cluster="kuberay"}') == []
