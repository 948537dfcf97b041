"""Every pod the deployment creates lands on the node group it is meant for (tests/cluster_model/intended.py) and on
no other, on the default, dev and prod synths and on shapes derived from them (Kubernetes 1.33 to 1.35, an
untainted extra node group). There are no known-broken placements: a finding is fixed in the platform, not marked.
"""

from __future__ import annotations

import fnmatch

import pytest

from .conftest import SHAPE_NAMES
from .intended import INTENDED, intended_for, placement_mismatch
from .scheduling import pod_requests


def _params():
    for shape in SHAPE_NAMES:
        for pattern in INTENDED:
            yield pytest.param(shape, pattern, id=f"{shape}:{pattern}")


@pytest.mark.parametrize("shape_name,pattern", list(_params()))
def test_lands_where_intended(shapes, shape_name, pattern):
    shape = shapes(shape_name)
    where, deployed = INTENDED[pattern]
    keys = sorted(k for k in shape.model.workloads if fnmatch.fnmatchcase(k, pattern))
    if not deployed(shape.cfg):
        assert not keys, f"{shape_name}: {keys} exist although their component is off in this config"
        return
    assert keys, f"{shape_name}: no workload matches {pattern}, and its component is on in this config"
    problems = [p for k in keys if (p := placement_mismatch(shape.model, shape.roles, shape.cfg, k, where))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("shape_name", SHAPE_NAMES)
def test_every_workload_has_an_intended_placement(shapes, shape_name):
    """A new pod producer must be placed in the table before it ships."""
    model = shapes(shape_name).model
    missing = sorted(k for k in model.workloads if intended_for(k) is None)
    assert not missing, f"add these to tests/cluster_model/intended.py INTENDED: {missing}"


@pytest.mark.parametrize("shape_name", ["default", "dev", "prod"])
def test_each_deployment_runs_the_user_guide_pods(shapes, shape_name):
    """The pods the user guide relies on are all among the workloads (the model found every producer)."""
    model = shapes(shape_name).model
    for pattern in ("helm/kuberay-operator/kuberay-operator", "helm/cluster-autoscaler/cluster-autoscaler",
                    "RayCluster/*/head", "RayCluster/*/worker/*", "addon/aws-fsx-csi-driver/fsx-csi-node",
                    "render_jobs/submit-job.yaml/Job/*", "render_jobs/rayjob.yaml/RayJob/*/submitter"):
        assert any(fnmatch.fnmatchcase(k, pattern) for k in model.workloads), pattern


@pytest.mark.parametrize("shape_name", ["default", "prod"])
def test_gpu_workers_get_the_gpus_they_ask_for(shapes, shape_name):
    """Each GPU worker requests its configured GPU count, and every node it lands on offers that many."""
    shape = shapes(shape_name)
    for g in shape.cfg.ray.worker_groups:
        key = f"RayCluster/{shape.cfg.ray.cluster_name}/worker/{g.name}"
        assert pod_requests(shape.model.workloads[key].spec).get("nvidia.com/gpu") == g.gpus
        for node in shape.model.placements[key].nodes:
            assert shape.model.offered[node].get("nvidia.com/gpu") >= g.gpus


@pytest.mark.parametrize("shape_name", SHAPE_NAMES)
def test_daemonsets_fit_every_node_they_land_on(shapes, shape_name):
    assert shapes(shape_name).model.daemonset_fit_problems() == {}
