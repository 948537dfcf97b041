"""The dashboards Grafana gets: Ray's exactly as the pinned Ray generates them, valid Grafana JSON, and ConfigMaps
the pinned chart's Grafana sidecar picks up (label and namespace from the recorded chart values, merged with ours
as Helm merges them)."""

from __future__ import annotations

import json

import pytest

from config import versions
from observability.dashboards import (
    GPU_DASHBOARD_UID,
    PLATFORM_DASHBOARD_UID,
    RAY_DASHBOARDS,
    all_panels,
    ray_dashboard,
)
from scripts import generate_dashboards
from tests.cluster_model import helm
from tests.cluster_model.facts import chart_facts
from tests.helpers import one, resources

# The uids the Ray dashboard embeds (its frontend falls back to these when the head reports none; the head reports
# the generated ones, which are these without RAY_GRAFANA_*_DASHBOARD_UID overrides).
RAY_UIDS = {"default": "rayDefaultDashboard", "data": "rayDataDashboard", "train": "rayTrainDashboard",
            "serve": "rayServeDashboard", "serve_deployment": "rayServeDeploymentDashboard"}
CONFIG_MAP_LIMIT = 1024 * 1024  # bytes of data per ConfigMap (etcd's object limit as the API server enforces it)


def test_ray_dashboards_are_what_the_pinned_ray_generates():
    assert generate_dashboards.main(["--check"]) == 0
    for name in RAY_DASHBOARDS:
        d = ray_dashboard(name)
        assert d["uid"] == RAY_UIDS[name]
        assert f"rayVersion:{versions.RAY_VERSION}" in d["tags"]


def test_a_hand_edited_ray_dashboard_is_caught(tmp_path, monkeypatch):
    copy = tmp_path / "ray_dashboards"
    copy.mkdir()
    for name in RAY_DASHBOARDS:
        src = generate_dashboards.RAY_DASHBOARDS_DIR / f"{name}_grafana_dashboard.json"
        (copy / src.name).write_text(src.read_text())
    edited = copy / "default_grafana_dashboard.json"
    edited.write_text(edited.read_text().replace("ray_tasks", "ray_taskz", 1))
    monkeypatch.setattr(generate_dashboards, "RAY_DASHBOARDS_DIR", copy)
    assert generate_dashboards.main(["--check"]) == 1


def config_maps(synth: dict) -> dict[str, dict]:
    return {k: v for k, v in resources(synth["ray"], "kubernetes_config_map_v1").items()
            if k.startswith("dashboard_")}


def provisioned(synth: dict) -> dict[str, dict]:
    """uid -> dashboard, from the ConfigMaps' data."""
    out = {}
    for cm in config_maps(synth).values():
        ((_, text),) = cm["data"].items()
        d = json.loads(text)
        out[d["uid"]] = d
    return out


def test_prod_provisions_rays_gpu_and_platform_dashboards(prod_synth):
    assert set(provisioned(prod_synth)) == {*RAY_UIDS.values(), GPU_DASHBOARD_UID, PLATFORM_DASHBOARD_UID}
    for key, cm in config_maps(prod_synth).items():
        size = sum(len(k) + len(v.encode()) for k, v in cm["data"].items())
        assert size < CONFIG_MAP_LIMIT, (key, size)


def test_no_grafana_no_dashboards(default_synth):
    assert config_maps(default_synth) == {}
    assert "grafana" not in resources(default_synth["ray"], "kubernetes_network_policy_v1")


def test_the_pinned_grafana_sidecar_picks_the_config_maps_up(prod_synth):
    """The sidecar's label, label value and namespaces: the chart's recorded defaults coalesced with our values.
    searchNamespace unset means Grafana's own namespace: the release's."""
    release = one(prod_synth["ray"], "helm_release", "kube_prometheus_stack")
    facts = chart_facts("kube-prometheus-stack", release["version"])
    values = helm.coalesce(facts.chart, json.loads(release["values"][0]))
    sidecar = values["grafana"]["sidecar"]["dashboards"]
    assert sidecar["enabled"] is True
    label, value, where = sidecar["label"], sidecar["labelValue"], sidecar.get("searchNamespace")
    assert where is None  # our null removed the chart's ALL: only Grafana's namespace
    for key, cm in config_maps(prod_synth).items():
        meta = cm["metadata"]
        assert meta["labels"] == {label: value}, key
        assert meta["namespace"] == release["namespace"], key


def test_with_the_charts_defaults_the_sidecar_would_search_everywhere():
    """What our null undoes (so the test above cannot pass by the recorded facts alone)."""
    facts = chart_facts("kube-prometheus-stack", versions.KUBE_PROMETHEUS_STACK_CHART)
    assert helm.coalesce(facts.chart, {})["grafana"]["sidecar"]["dashboards"]["searchNamespace"] == "ALL"


def grafana_problems(d: dict) -> list[str]:
    """What Grafana's dashboard model requires of a provisioned dashboard (a structural check: no Grafana here)."""
    out = []
    for key, kind in (("uid", str), ("title", str), ("panels", list), ("schemaVersion", int)):
        if not isinstance(d.get(key), kind):
            out.append(f"{key} is not a {kind.__name__}")
    if len(d.get("uid", "")) > 40:
        out.append("uid longer than 40 characters")
    variables = {v.get("name"): v for v in (d.get("templating") or {}).get("list") or []}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        out.append("no datasource variable of Prometheus type (the Ray dashboard sets var-datasource)")
    panels = all_panels(d)
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)) or not all(isinstance(i, int) for i in ids):
        out.append(f"panel ids not unique integers: {ids}")
    for p in panels:
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "xywh") or g["x"] + g["w"] > 24:
            out.append(f"panel {p.get('id')}: gridPos {g}")
        refs = [t.get("refId") for t in p.get("targets") or []]
        if len(refs) != len(set(refs)):
            out.append(f"panel {p.get('id')}: refIds {refs}")
        if p.get("type") != "row" and not p.get("targets") and p.get("type") not in ("text",):
            out.append(f"panel {p.get('id')} ({p.get('title')}): no query")
    return out


def test_every_provisioned_dashboard_is_valid_grafana_json(prod_synth):
    for uid, d in provisioned(prod_synth).items():
        assert grafana_problems(d) == [], uid


@pytest.mark.parametrize("breakage, problem", [
    (lambda d: d["panels"][1].update(id=d["panels"][0]["id"]), "panel ids not unique"),
    (lambda d: d["templating"]["list"].pop(0), "no datasource variable"),
    (lambda d: d["panels"][0]["gridPos"].update(x=20), "gridPos"),
])
def test_the_grafana_check_catches_broken_dashboards(prod_synth, breakage, problem):
    d = json.loads(json.dumps(provisioned(prod_synth)[PLATFORM_DASHBOARD_UID]))
    breakage(d)
    assert any(problem in p for p in grafana_problems(d))


def test_platform_dashboard_has_a_row_per_worker_group(prod_synth):
    d = provisioned(prod_synth)[PLATFORM_DASHBOARD_UID]
    titles = [p["title"] for p in all_panels(d)]
    assert titles == ["Ray head memory vs its limit", "Worker group gpu-group",
                      "gpu-group: workers wanted / running / pending", "gpu-group: GPU utilisation and memory"]
    exprs = " ".join(t["expr"] for p in all_panels(d) for t in p.get("targets") or [])
    assert 'pod=~"kuberay-gpu-group-worker-.+"' in exprs and 'NodeType="gpu-group"' in exprs


def test_the_heads_memory_request_equals_its_limit(prod_synth, default_synth):
    """No eviction surprise: a head using more than its request is the first the kubelet evicts under memory
    pressure; request = limit makes the limit (what RayHeadMemoryHigh watches) the only bound."""
    for synth in (prod_synth, default_synth):
        rc = one(synth["ray-cluster"], "kubernetes_manifest", "ray_cluster")["manifest"]
        head = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert head["resources"]["requests"] == head["resources"]["limits"]
        assert head["resources"]["limits"]["memory"] == synth["_cfg"].ray.head.memory
