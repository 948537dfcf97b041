"""Deployment shapes the cluster model is run on: the session synths (no synth of its own but one shared with
tests/constructs_lib and tests/scripts), and shapes derived from them by changing one input the model reads."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from config import AppConfig, load_config
from conventions.eks import ADDON_CONFIGURATION, CONTAINER_INSIGHTS_ADDON
from scripts.render_jobs import documents, job_props
from tests.helpers import ROOT

from .model import ClusterModel

EXAMPLES = ROOT / "config" / "examples"
# The rendered jobs need an image; which one does not change where they run.
RENDER_IMAGE = "registry.example/ray:render"


@dataclass
class Shape:
    name: str
    synth: dict
    cfg: AppConfig
    kubernetes_version: str | None = None  # None: the infra stack's aws_eks_cluster version
    extra_roles: dict[str, str] = field(default_factory=dict)  # node groups added by a derived shape
    _model: ClusterModel | None = None

    @property
    def documents(self) -> dict:
        return documents(job_props(self.cfg, image=RENDER_IMAGE))

    @property
    def model(self) -> ClusterModel:
        if self._model is None:
            self._model = self.build()
        return self._model

    def build(self, synth: dict | None = None, docs: dict | None = None) -> ClusterModel:
        """The model of this shape, or of a changed copy of its synth / rendered documents."""
        return ClusterModel.from_synth(synth if synth is not None else self.synth,
                                       docs if docs is not None else self.documents, self.kubernetes_version)

    @property
    def roles(self) -> dict[str, str]:
        """Node group name -> its role (core, gpu, cpu), as configured."""
        return {**{g.name: g.role for g in self.cfg.cluster.node_groups}, **self.extra_roles}

    def copy_synth(self) -> dict:
        # The output directory comes along (not copied): the orchestrator's Jobs are read from its package there.
        return {**copy.deepcopy({k: v for k, v in self.synth.items() if not k.startswith("_")}),
                "_outdir": self.synth.get("_outdir")}


def without_our_dcgm_exporter(synth: dict) -> dict:
    """The prod synth as observability.dcgm_exporter: false makes it: no DCGM exporter release, the Container
    Insights add-on with its configuration as ADDON_CONFIGURATION has it (its own DCGM exporter on)."""
    synth = copy.deepcopy(synth)
    resources = synth["ray"]["resource"]
    del resources["helm_release"]["dcgm_exporter"]
    (addon,) = [a for a in resources["aws_eks_addon"].values() if a["addon_name"] == CONTAINER_INSIGHTS_ADDON]
    addon["configuration_values"] = json.dumps(ADDON_CONFIGURATION[CONTAINER_INSIGHTS_ADDON])
    return synth


def with_untainted_group(synth: dict, name: str = "cpu", like: str = "core") -> dict:
    """A copy of a synth with one more node group: ``like``'s instance types, labelled usage=<name>, no taint."""
    out = copy.deepcopy({k: v for k, v in synth.items() if not k.startswith("_")})
    out["_outdir"] = synth.get("_outdir")
    groups = out["infra"]["resource"]["aws_eks_node_group"]
    group = copy.deepcopy(groups[like])
    group["labels"] = {"usage": name}
    group.pop("taint", None)
    groups[name] = group
    return out


SHAPE_NAMES = ("default", "default-k8s-1.34", "dev", "prod", "prod-existing-vpc-k8s-1.33", "prod-with-cpu-group",
               "multi-group", "karpenter", "karpenter-default", "karpenter-default-k8s-1.34", "karpenter-multi",
               "prod-addon-dcgm")
# Session synths (tests/helpers.py session_configs) the model runs on as they are.
SESSION_SHAPES = ("multi-group", "karpenter", "karpenter-default", "karpenter-multi")


@pytest.fixture(scope="session")
def shapes(request) -> Callable[[str], Shape]:
    """``shapes(name)``: a Shape of SHAPE_NAMES, built on first use (synths are shared session synths)."""
    built: dict[str, Shape] = {}

    def prod_example() -> tuple[dict, AppConfig]:
        synth = request.getfixturevalue("prod_synth")
        return synth, synth["_cfg"]

    def make(name: str) -> Shape:
        if name == "default":
            return Shape(name, request.getfixturevalue("default_synth"), AppConfig())
        if name == "default-k8s-1.34":
            # kubernetes_version changes the cluster's version and cluster-autoscaler's image tag, nothing the
            # model reads besides the version: the default synth stands for it.
            return Shape(name, request.getfixturevalue("default_synth"), AppConfig(), kubernetes_version="1.34")
        if name == "dev":
            return Shape(name, request.getfixturevalue("dev_synth"), load_config(str(EXAMPLES / "dev-cpu.yaml")))
        if name == "prod":
            return Shape(name, *prod_example())
        if name == "prod-existing-vpc-k8s-1.33":
            synth = request.getfixturevalue("existing_synth")
            return Shape(name, synth, synth["_cfg"])
        if name in SESSION_SHAPES:
            synth = request.getfixturevalue("app_synth")(name)
            return Shape(name, synth, synth["_cfg"])
        if name == "karpenter-default-k8s-1.34":
            # Before 1.35 only our template's nvidia.com/gpu.present label puts the device plugin on Karpenter's
            # GPU nodes: the same synth on the older version.
            synth = request.getfixturevalue("app_synth")("karpenter-default")
            return Shape(name, synth, synth["_cfg"], kubernetes_version="1.34")
        if name == "prod-with-cpu-group":
            synth, cfg = prod_example()
            return Shape(name, with_untainted_group(synth), cfg, extra_roles={"cpu": "cpu"})
        if name == "prod-addon-dcgm":
            # Container Insights without our DCGM exporter: the add-on's own runs on the GPU nodes.
            synth, cfg = prod_example()
            return Shape(name, without_our_dcgm_exporter(synth), cfg.model_copy(update={
                "observability": cfg.observability.model_copy(update={"dcgm_exporter": False})}))
        raise KeyError(name)

    def get(name: str) -> Shape:
        if name not in built:
            built[name] = make(name)
        return built[name]

    return get
