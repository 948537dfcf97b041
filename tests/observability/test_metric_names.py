"""Every metric name our dashboards and alerts read is one the pinned exporters export: the lists derived from
the pinned Ray, the dcgm-exporter chart and kube-state-metrics (scripts/derive_metric_names.py, committed under
tests/reference/metrics/). Ray's own dashboards are checked against the Ray list too; the names they use that the
derivation cannot see are pinned in a list of their own, so a new one shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_config
from observability.alerts import rule_groups
from observability.dashboards import (
    RAY_DASHBOARDS,
    PlatformDashboardProps,
    WorkerGroup,
    expressions,
    gpu_dashboard,
    platform_dashboard,
    ray_dashboard,
)
from observability.promql import metric_names, name_regex_matchers
from scripts.derive_metric_names import out_path, read_names
from stacks.ray_cluster import alert_props
from tests.helpers import ROOT

UNSEEN = ROOT / "tests" / "reference" / "metrics" / "ray-2.58.0-dashboards-unseen.txt"


def exported() -> dict[str, set[str]]:
    return {"ray": read_names("ray"), "dcgm": read_names("dcgm"), "ksm": read_names("ksm")}


def prod():
    return load_config(str(ROOT / "config" / "examples" / "prod-gpu.yaml"))


def our_expressions(cfg) -> dict[str, list[str]]:
    platform = platform_dashboard(PlatformDashboardProps(cfg.ray.cluster_name, cfg.ray.namespace, tuple(
        WorkerGroup(w.name, w.gpus) for w in cfg.ray.worker_groups)))
    alerts = [r["expr"] for g in rule_groups(alert_props(cfg)) for r in g["rules"]]
    return {"gpu dashboard": expressions(gpu_dashboard()), "platform dashboard": expressions(platform),
            "alerts": alerts}


def unknown_names(exprs: list[str], known: set[str]) -> list[str]:
    return sorted({n for e in exprs for n in metric_names(e)} - known)


@pytest.mark.parametrize("what", ["gpu dashboard", "platform dashboard", "alerts"])
def test_our_dashboards_and_alerts_read_only_exported_metrics(what):
    lists = exported()
    exprs = our_expressions(prod())[what]
    assert exprs
    assert unknown_names(exprs, set().union(*lists.values())) == []
    assert not [m for e in exprs for m in name_regex_matchers(e)]


def test_a_misspelt_metric_is_caught():
    assert unknown_names(['DCGM_FI_DEV_GPU_UTILIZATION{gpu="0"} < 10'], read_names("dcgm")) == [
        "DCGM_FI_DEV_GPU_UTILIZATION"]


def test_each_exporter_list_holds_what_we_use_of_it():
    """Which list vouches for which names (a name in the wrong exporter's namespace would be a mix-up)."""
    lists = exported()
    used = {n for exprs in our_expressions(prod()).values() for e in exprs for n in metric_names(e)}
    assert {n for n in used if n.startswith("DCGM_")} <= lists["dcgm"]
    assert {n for n in used if n.startswith("kube_")} <= lists["ksm"]
    assert {n for n in used if n.startswith(("ray_", "autoscaler_"))} <= lists["ray"]
    assert all(n.startswith(("DCGM_", "kube_", "ray_", "autoscaler_")) for n in used)


def read_unseen() -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in UNSEEN.read_text().splitlines())
    return {line for line in lines if line}


def test_rays_own_dashboards_read_rays_metrics():
    ray = read_names("ray")
    used = {n for name in RAY_DASHBOARDS for e in expressions(ray_dashboard(name)) for n in metric_names(e)}
    unseen = read_unseen()
    assert sorted(used - ray - unseen) == [], "new names in Ray's dashboards: derive again or list them as unseen"
    assert sorted(unseen & ray) == [], "listed as unseen, and derived now: remove them from the unseen list"
    assert sorted(unseen - used) == [], "listed as unseen, and no dashboard reads them"


def test_metric_lists_are_committed_with_their_source():
    for exporter in ("ray", "dcgm", "ksm"):
        text = Path(out_path(exporter)).read_text()
        assert text.startswith("# ") and "Derived by: python -m scripts.derive_metric_names" in text
        assert len(read_names(exporter)) > 20
