"""The scheduler filters of tests/cluster_model/scheduling.py on small cases (Kubernetes' own semantics)."""

from __future__ import annotations

import pytest

from .scheduling import (
    NotModelled,
    Resources,
    canonical,
    matches_expression,
    matches_node_affinity,
    pod_requests,
    selection_problem,
    tolerates,
    untolerated_taints,
)

LABELS = {"usage": "gpu", "kubernetes.io/arch": "amd64", "gpus": "4"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


@pytest.mark.parametrize("expr,expected", [
    ({"key": "usage", "operator": "In", "values": ["gpu", "cpu"]}, True),
    ({"key": "usage", "operator": "In", "values": ["core"]}, False),
    ({"key": "absent", "operator": "In", "values": ["x"]}, False),
    ({"key": "usage", "operator": "NotIn", "values": ["core"]}, True),
    ({"key": "usage", "operator": "NotIn", "values": ["gpu"]}, False),
    ({"key": "absent", "operator": "NotIn", "values": ["x"]}, True),  # NotIn matches a missing label
    ({"key": "usage", "operator": "Exists"}, True),
    ({"key": "absent", "operator": "Exists"}, False),
    ({"key": "absent", "operator": "DoesNotExist"}, True),
    ({"key": "usage", "operator": "DoesNotExist"}, False),
    ({"key": "gpus", "operator": "Gt", "values": ["3"]}, True),
    ({"key": "gpus", "operator": "Gt", "values": ["4"]}, False),
    ({"key": "gpus", "operator": "Lt", "values": ["5"]}, True),
    ({"key": "usage", "operator": "Gt", "values": ["1"]}, False),  # not an integer label
    ({"key": "absent", "operator": "Lt", "values": ["1"]}, False),
])
def test_match_expressions(expr, expected):
    assert matches_expression(expr, LABELS) is expected


def _affinity(*terms):
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}}


def test_terms_are_ored_expressions_anded():
    yes = {"matchExpressions": [{"key": "usage", "operator": "In", "values": ["gpu"]}]}
    no = {"matchExpressions": [{"key": "usage", "operator": "In", "values": ["gpu"]},
                               {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}
    assert matches_node_affinity(_affinity(no, yes), LABELS)
    assert not matches_node_affinity(_affinity(no), LABELS)
    assert not matches_node_affinity(_affinity({"matchExpressions": []}), LABELS)  # an empty term matches nothing
    assert not matches_node_affinity(_affinity(), LABELS)
    assert matches_node_affinity({}, LABELS)  # no required affinity: any node


def test_preferred_affinity_is_not_a_filter_and_required_pod_affinity_is_refused():
    preferred = {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [{"key": "usage", "operator": "In", "values": ["x"]}]}}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}}}
    assert matches_node_affinity(preferred, LABELS)
    with pytest.raises(NotModelled):
        matches_node_affinity({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname"}]}}}, LABELS)


@pytest.mark.parametrize("toleration,expected", [
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
    ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),  # no effect: every effect
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}, True),
    ({"key": "nvidia.com/gpu", "value": "true"}, True),  # operator defaults to Equal
    ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}, False),
    ({"operator": "Exists"}, True),  # no key: every taint
    ({"operator": "Exists", "effect": "NoSchedule"}, True),
    ({"operator": "Exists", "effect": "NoExecute"}, False),
    ({"key": "CriticalAddonsOnly", "operator": "Exists"}, False),
])
def test_tolerations(toleration, expected):
    assert tolerates(toleration, GPU_TAINT) is expected


def test_only_noschedule_and_noexecute_taints_repel():
    prefer = {"key": "a", "value": "", "effect": "PreferNoSchedule"}
    execute = {"key": "b", "value": "", "effect": "NoExecute"}
    assert untolerated_taints([], [prefer, execute, GPU_TAINT]) == [execute, GPU_TAINT]


def test_selection_checks_selector_affinity_and_taints():
    spec = {"nodeSelector": {"usage": "gpu"}, "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}
    assert selection_problem(spec, LABELS, [GPU_TAINT]) is None
    assert "nodeSelector" in str(selection_problem({**spec, "nodeSelector": {"usage": "core"}}, LABELS, [GPU_TAINT]))
    assert "untolerated taint nvidia.com/gpu=true:NoSchedule" in str(selection_problem(
        {"nodeSelector": {"usage": "gpu"}}, LABELS, [GPU_TAINT]))
    assert "affinity" in str(selection_problem({**spec, **_affinity({"matchExpressions": [
        {"key": "usage", "operator": "In", "values": ["core"]}]})}, LABELS, [GPU_TAINT]))


@pytest.mark.parametrize("resource,value,expected", [
    ("cpu", "100m", 100), ("cpu", "1", 1000), ("cpu", "0.5", 500), ("cpu", 2, 2000), ("cpu", "1.0001", 1001),
    ("memory", "512Mi", 512 * 2 ** 20), ("memory", "1Gi", 2 ** 30), ("memory", "1G", 10 ** 9),
    ("memory", "1e3", 1000), ("memory", "128974848", 128974848), ("nvidia.com/gpu", "1", 1),
])
def test_quantities(resource, value, expected):
    assert canonical(resource, value) == expected


def test_bad_quantity_is_refused():
    with pytest.raises(ValueError):
        canonical("memory", "12 GB")


def _c(name, requests=None, limits=None):
    res = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": name, "resources": res}


def test_pod_requests_sum_containers_max_with_init_and_default_to_limits():
    spec = {
        "initContainers": [_c("init-big-cpu", {"cpu": "3"}), _c("init-mem", {"memory": "1Gi"})],
        "containers": [_c("a", {"cpu": "1", "memory": "256Mi"}), _c("b", limits={"cpu": "500m", "memory": "128Mi"}),
                       _c("gpu", {"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "1"}), {"name": "none"}],
    }
    r = pod_requests(spec)
    assert r.get("cpu") == 3000  # the init container's 3 CPUs beat 1.5 summed
    assert r.get("memory") == 1024 * 2 ** 20  # init's 1Gi beats 384Mi summed
    assert r.get("nvidia.com/gpu") == 1
    only_limits = pod_requests({"containers": [_c("x", limits={"cpu": "2"})]})
    assert only_limits.get("cpu") == 2000


def test_sidecar_init_containers_are_refused():
    with pytest.raises(NotModelled):
        pod_requests({"containers": [_c("a")], "initContainers": [{**_c("s"), "restartPolicy": "Always"}]})


def test_shortfalls_name_the_resource():
    need = Resources.of({"cpu": "4", "memory": "1Gi", "nvidia.com/gpu": 1})
    have = Resources.of({"cpu": "3920m", "memory": "14Gi"})
    assert need.shortfalls(have) == ["insufficient cpu: needs 4000m, 3920m free",
                                     "insufficient nvidia.com/gpu: needs 1, 0 free"]
