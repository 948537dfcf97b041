"""Helm's value rules as tests/cluster_model/helm.py applies them (helm/helm@v3.19.5 pkg/chartutil/coalesce.go,
pkg/cli/values/options.go mergeMaps), on small cases and on the recorded nvidia-device-plugin chart."""

from __future__ import annotations

from .facts import chart_facts
from .helm import Chart, coalesce, condition_enabled, get_path, merge_documents

AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}]}}}
CHART = Chart("c", {"nodeSelector": {}, "affinity": AFFINITY, "tolerations": [{"key": "x", "operator": "Exists"}],
                    "image": {"repository": "r", "tag": "1"}, "replicas": 1})


def test_no_user_values_gives_the_defaults():
    assert coalesce(CHART, None) == CHART.values


def test_maps_merge_recursively_user_winning():
    out = coalesce(CHART, {"image": {"tag": "2"}, "nodeSelector": {"usage": "core"}})
    assert out["image"] == {"repository": "r", "tag": "2"}
    assert out["nodeSelector"] == {"usage": "core"}


def test_an_empty_map_keeps_the_default_map():
    assert coalesce(CHART, {"affinity": {}})["affinity"] == AFFINITY


def test_a_null_deletes_the_default():
    out = coalesce(CHART, {"affinity": None, "replicas": None})
    assert "affinity" not in out and "replicas" not in out


def test_a_nested_null_deletes_only_that_key():
    out = coalesce(CHART, {"affinity": {"nodeAffinity": None}, "image": {"tag": None}})
    assert out["affinity"] == {}
    assert out["image"] == {"repository": "r"}


def test_a_nested_null_without_default_goes_too():
    assert coalesce(CHART, {"image": {"pullPolicy": None}})["image"] == {"repository": "r", "tag": "1"}


def test_a_user_list_replaces_the_default_list():
    mine = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert coalesce(CHART, {"tolerations": mine})["tolerations"] == mine
    assert coalesce(CHART, {"tolerations": []})["tolerations"] == []


def test_a_scalar_replaces_a_default_map_and_a_map_replaces_a_default_scalar():
    out = coalesce(CHART, {"affinity": "x", "replicas": {"n": 2}})
    assert out["affinity"] == "x" and out["replicas"] == {"n": 2}


def test_user_values_are_not_modified():
    user = {"affinity": None, "image": {"tag": None}}
    coalesce(CHART, user)
    assert user == {"affinity": None, "image": {"tag": None}}


SUB = Chart("grafana", {"nodeSelector": {"kubernetes.io/os": "linux"}, "sidecar": {"enabled": False, "resources": {}}})
PARENT = Chart("kps", {"grafana": {"enabled": True, "sidecar": {"enabled": True}}, "other": 1}, {"grafana": SUB})


def test_subchart_values_live_under_its_key_parent_over_subchart_defaults():
    out = coalesce(PARENT, None)
    assert out["grafana"] == {"enabled": True, "sidecar": {"enabled": True, "resources": {}},
                              "nodeSelector": {"kubernetes.io/os": "linux"}}


def test_user_values_reach_the_subchart():
    out = coalesce(PARENT, {"grafana": {"nodeSelector": {"usage": "core"}}})
    assert out["grafana"]["nodeSelector"] == {"kubernetes.io/os": "linux", "usage": "core"}


def test_a_user_null_deletes_a_subchart_default():
    out = coalesce(PARENT, {"grafana": {"nodeSelector": None, "sidecar": {"enabled": None}}})
    assert "nodeSelector" not in out["grafana"]
    assert out["grafana"]["sidecar"] == {"resources": {}}


def test_a_subchart_key_must_be_a_map():
    try:
        coalesce(PARENT, {"grafana": "off"})
    except TypeError as e:
        assert "grafana" in str(e)
    else:
        raise AssertionError("a non-map subchart key was accepted")


def test_condition_first_bool_path_wins():
    assert condition_enabled({"nfd": {}, "gfd": {"enabled": False}}, "nfd.enabled,gfd.enabled") is False
    both = {"nfd": {"enabled": True}, "gfd": {"enabled": False}}
    assert condition_enabled(both, "nfd.enabled,gfd.enabled") is True
    assert condition_enabled({"nfd": {"enabled": "yes"}}, "nfd.enabled") is True  # not a bool: no decision
    assert condition_enabled({}, None) is True


def test_documents_merge_later_wins_maps_recursive_lists_replaced_nulls_kept():
    out = merge_documents({"a": {"b": 1, "c": [1]}, "d": 1}, None, {"a": {"c": [2], "e": None}, "d": None})
    assert out == {"a": {"b": 1, "c": [2], "e": None}, "d": None}


def test_get_path():
    assert get_path({"a": {"b": {"c": 3}}}, "a.b.c") == 3
    assert get_path({"a": {"b": 1}}, "a.b.c", "missing") == "missing"


# ------------------------------------------------------------------------------------------ on a recorded chart
def _device_plugin(values):
    rendered = chart_facts("nvidia-device-plugin", "0.18.0").render(values, "dp")
    return {w.id: w.spec for w in rendered}["dp/device-plugin"]


def test_device_plugin_affinity_empty_map_keeps_the_nfd_default():
    spec = _device_plugin({"affinity": {}, "nodeSelector": {"usage": "gpu"}})
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [t["matchExpressions"][0]["key"] for t in terms] == [
        "feature.node.kubernetes.io/pci-10de.present", "feature.node.kubernetes.io/cpu-model.vendor_id",
        "nvidia.com/gpu.present"]


def test_device_plugin_affinity_null_renders_none():
    spec = _device_plugin({"affinity": None, "nodeSelector": {"usage": "gpu"}})
    assert "affinity" not in spec and spec["nodeSelector"] == {"usage": "gpu"}


def test_device_plugin_own_terms_replace_the_default_terms():
    mine = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "usage", "operator": "In", "values": ["gpu"]}]}]}}}
    assert _device_plugin({"affinity": mine})["affinity"] == mine


def test_device_plugin_tolerations_list_is_replaced_not_merged():
    mine = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert _device_plugin({"tolerations": mine})["tolerations"] == mine
    assert len(_device_plugin(None)["tolerations"]) == 2  # the chart's own two, untouched
