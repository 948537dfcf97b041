"""Recorded placement facts of the charts and EKS add-ons we deploy, and their rendering into pod specs.

One YAML file per chart version (tests/reference/charts/<chart>@<version>.yaml) or EKS add-on
(tests/reference/eks-addons/<addon>.yaml), read from the upstream source it names: the chart's ``values`` (only
the keys its pod templates read), its ``dependencies`` (subcharts: key, version, condition, values, workloads)
and its ``workloads``. A workload says when its template renders and how the template turns values into the
pod's placement, as *field specs*:

    {value: a.b.c}                     the coalesced value at a dotted path (scope: the chart, or the subchart)
    {literal: X}                       X as written in the template
    {merge: [spec, ...]}               maps merged left to right (later wins): a hard-coded map plus a value's
    {concat: [spec, ...]}              lists joined
    {first_truthy: [spec, ...]}        the first non-empty one (Go ``default``), else the last
    {first_present: [path, ...]}       the value of the first path that is set, even to [] (``dig ... nil``)
    {if: path, [equals: v], then: spec, else: spec}
    {daemonset_table: {name: N, container: i}}   requests of container i of DaemonSet N in config/capacity.py
                                       DAEMONSETS, for a DaemonSet with no public manifest: the model and the
                                       synth-time fit validation then share one recorded value, and the workload's
                                       requests are verified only if the table's entry is

``when`` (all true; ``!path``: false), ``when_any`` (one true) gate a template; ``unrecorded_when`` names values
that would add pods or containers the facts do not record: the model refuses them instead of guessing.
Rendering follows Go templates' ``with``: an empty map or list renders nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from config import capacity

from . import helm
from .scheduling import NotModelled

ROOT = Path(__file__).resolve().parents[2]
CHARTS_DIR = ROOT / "tests" / "reference" / "charts"
ADDONS_DIR = ROOT / "tests" / "reference" / "eks-addons"
SPEC_OPS = ("value", "literal", "merge", "concat", "first_truthy", "first_present", "if", "daemonset_table")
POD_FIELDS = ("nodeSelector", "affinity", "tolerations", "priorityClassName")


class MissingFacts(LookupError):
    """A chart version or add-on the stacks deploy has no recorded facts."""


@dataclass(frozen=True)
class RenderedWorkload:
    """One pod-producing template of a chart or add-on, rendered: its pod spec in Kubernetes shape."""

    id: str
    kind: str
    spec: dict
    advertises: tuple[str, ...] = ()  # extended resources its pods make a node offer (a device plugin)
    provides_csi_driver: str | None = None  # a CSI node plugin: volumes of this driver mount where it runs
    requests_verified: bool = True


@dataclass(frozen=True)
class Facts:
    """A chart version or an EKS add-on, as recorded."""

    name: str
    version: str  # chart version, or "eks" for an add-on
    path: Path
    data: dict = field(repr=False)

    @property
    def chart(self) -> helm.Chart:
        deps = {d["key"]: helm.Chart(d.get("chart", d["key"]), d.get("values") or {})
                for d in self.data.get("dependencies") or []}
        return helm.Chart(self.name, self.data.get("values") or {}, deps)

    def render(self, user_values: dict | None, origin: str) -> list[RenderedWorkload]:
        """The workloads the chart renders for these user values (coalesced with the recorded defaults)."""
        merged = helm.coalesce(self.chart, user_values)
        out = [_render(w, merged, f"{origin}/{w['id']}") for w in self.data.get("workloads") or []]
        for dep in self.data.get("dependencies") or []:
            if not helm.condition_enabled(merged, dep.get("condition")):
                continue
            if dep.get("workloads") == "unrecorded":
                raise NotModelled(f"{origin}: subchart {dep['key']} ({dep.get('chart')} {dep.get('version')}) is "
                                  f"enabled by {dep.get('condition')}, and its workloads are not recorded")
            out += [_render(w, merged[dep["key"]], f"{origin}/{w['id']}") for w in dep.get("workloads") or []]
        return [w for w in out if w is not None]


def _load(path: Path, name: str, version: str) -> Facts:
    return Facts(name=name, version=version, path=path, data=yaml.safe_load(path.read_text()))


@cache
def chart_facts(chart: str, version: str) -> Facts:
    path = CHARTS_DIR / f"{chart}@{version}.yaml"
    if not path.is_file():
        raise MissingFacts(f"no recorded placement facts for chart {chart} {version}: record its values.yaml "
                           f"defaults and pod templates in {path.relative_to(ROOT)}")
    facts = _load(path, chart, version)
    if (facts.data.get("chart"), str(facts.data.get("version"))) != (chart, version):
        raise MissingFacts(f"{path.name} records chart {facts.data.get('chart')} {facts.data.get('version')}")
    return facts


@cache
def addon_facts(addon: str) -> Facts:
    path = ADDONS_DIR / f"{addon}.yaml"
    if not path.is_file():
        raise MissingFacts(f"no recorded placement facts for EKS add-on {addon}: record them in "
                           f"{path.relative_to(ROOT)}")
    facts = _load(path, addon, "eks")
    if facts.data.get("addon") != addon:
        raise MissingFacts(f"{path.name} records add-on {facts.data.get('addon')}")
    return facts


def all_fact_files() -> list[Path]:
    return sorted([*CHARTS_DIR.glob("*.yaml"), *ADDONS_DIR.glob("*.yaml")])


# ------------------------------------------------------------------------------------------ rendering
def _gate(paths: list[str], values: dict) -> list[bool]:
    out = []
    for p in paths:
        neg = p.startswith("!")
        v = helm.truthy(helm.get_path(values, p.lstrip("!")))
        out.append(not v if neg else v)
    return out


def holds(paths: list[str] | None, values: dict, any_of: bool = False) -> bool:
    """A ``when`` gate (every path true; ``!path``: false), or with ``any_of`` a ``when_any`` (one true); none: true."""
    if not paths:
        return True
    results = _gate(paths, values)
    return any(results) if any_of else all(results)


def _render(w: dict, values: dict, key: str) -> RenderedWorkload | None:
    if w.get("when") and not all(_gate(w["when"], values)):
        return None
    if w.get("when_any") and not any(_gate(w["when_any"], values)):
        return None
    for p in w.get("unrecorded_when") or []:
        if helm.truthy(helm.get_path(values, p)):
            raise NotModelled(f"{key}: {p} is set, and what it adds to the pods is not recorded")
    if "pod" not in w:
        raise NotModelled(f"{key}: renders, and its pod spec is not recorded")
    spec: dict = {}
    for name, fspec in w["pod"].items():
        if name not in POD_FIELDS:
            raise ValueError(f"{key}: pod field {name} is not one the model reads ({', '.join(POD_FIELDS)})")
        v = evaluate(fspec, values)
        if helm.truthy(v):  # `with`: empty renders nothing
            spec[name] = v
    verified = w.get("requests_verified", True)
    for kind, field_name in (("containers", "containers"), ("init_containers", "initContainers")):
        items = []
        for c in w.get(kind) or []:
            if c.get("when") and not all(_gate(c["when"], values)):
                continue
            items.append({"name": c["name"], "resources": evaluate(c["resources"], values) or {}})
            ref = c["resources"].get("daemonset_table") if isinstance(c["resources"], dict) else None
            if ref is not None:
                verified = verified and table_daemonset(ref["name"]).verified
        if items:
            spec[field_name] = items
    return RenderedWorkload(id=key, kind=w["kind"], spec=spec, advertises=tuple(w.get("advertises") or ()),
                            provides_csi_driver=w.get("provides_csi_driver"), requests_verified=verified)


def table_daemonset(name: str) -> capacity.DaemonSet:
    """An entry of config/capacity.py DAEMONSETS, by its DaemonSet name."""
    hits = [d for d in capacity.DAEMONSETS if d.name == name]
    if len(hits) != 1:
        raise ValueError(f"config/capacity.py DAEMONSETS has {len(hits)} entries named {name!r}")
    return hits[0]


def evaluate(spec: Any, values: dict) -> Any:
    """The value of a field spec (see the module docstring) against coalesced values."""
    if not isinstance(spec, dict) or len([k for k in spec if k in SPEC_OPS]) != 1:
        raise ValueError(f"not a field spec (one of {', '.join(SPEC_OPS)}): {spec!r}")
    if "value" in spec:
        return copy.deepcopy(helm.get_path(values, spec["value"]))
    if "literal" in spec:
        return copy.deepcopy(spec["literal"])
    if "merge" in spec:
        out: dict = {}
        for part in spec["merge"]:
            v = evaluate(part, values)
            if v is None:
                continue
            if not isinstance(v, dict):
                raise ValueError(f"merge of a non-map: {v!r}")
            out = _merge_overwrite(out, v)
        return out
    if "concat" in spec:
        items: list = []
        for part in spec["concat"]:
            items += evaluate(part, values) or []
        return items
    if "first_truthy" in spec:
        v = None
        for part in spec["first_truthy"]:
            v = evaluate(part, values)
            if helm.truthy(v):
                return v
        return v
    if "first_present" in spec:
        for path in spec["first_present"]:
            v = helm.get_path(values, path)
            if v is not None:
                return copy.deepcopy(v)
        return None
    if "daemonset_table" in spec:
        ref = spec["daemonset_table"]
        return {"requests": dict(table_daemonset(ref["name"]).containers[ref.get("container", 0)])}
    cond = helm.get_path(values, spec["if"])
    hit = cond == spec["equals"] if "equals" in spec else helm.truthy(cond)
    branch = spec.get("then") if hit else spec.get("else")
    return None if branch is None else evaluate(branch, values)


def _merge_overwrite(dst: dict, src: dict) -> dict:
    """sprig ``mergeOverwrite``: maps merge recursively, anything else from ``src`` replaces."""
    out = copy.deepcopy(dst)
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge_overwrite(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
