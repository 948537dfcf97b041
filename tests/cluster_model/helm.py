"""Helm's value merging, as Helm does it (no helm binary here), so chart defaults and our values combine exactly.

Two steps, two sets of rules:

- ``merge_documents``: several ``values`` documents of one release (the helm provider's ``values`` list, or
  ``helm -f a -f b``) are merged by helm/helm@v3.19.5 pkg/cli/values/options.go ``mergeMaps``: maps merge
  recursively, anything else (lists, scalars, null) from the later document wins.
- ``coalesce``: the user values are coalesced with the chart's values.yaml and its subcharts' by
  pkg/chartutil/coalesce.go ``CoalesceValues``: maps merge recursively with the user winning, a user ``null``
  deletes the key (so ``affinity: null`` drops a default that ``affinity: {}`` keeps), a user list replaces the
  default list whole, and a subchart's values live under its name (alias) in the parent's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


def _table(v: Any) -> bool:
    return isinstance(v, dict)


def merge_documents(*documents: dict | None) -> dict:
    """Merge values documents left to right (``mergeMaps``): later documents win, maps merge recursively."""
    out: dict = {}
    for doc in documents:
        if doc:
            out = _merge_maps(out, doc)
    return out


def _merge_maps(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if _table(v) and _table(out.get(k)):
            out[k] = _merge_maps(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass(frozen=True)
class Chart:
    """What coalescing needs of a chart: its values.yaml and its dependencies (keyed by name or alias)."""

    name: str
    values: dict
    dependencies: dict[str, Chart] = field(default_factory=dict)


def coalesce(chart: Chart, user: dict | None) -> dict:
    """The values a chart's templates see for ``user`` values (``CoalesceValues``; globals are not modelled)."""
    dest = copy.deepcopy(user or {})
    return _coalesce(chart, dest)


def _coalesce(chart: Chart, dest: dict) -> dict:
    _coalesce_values(chart, dest)
    # coalesceDeps: each subchart's values.yaml under its key, the parent's (and user's) values winning.
    for key, sub in chart.dependencies.items():
        if key not in dest:
            dest[key] = {}
        elif not _table(dest[key]):
            raise TypeError(f"type mismatch on {key}: {dest[key]!r} (a subchart's values must be a map)")
        dest[key] = _coalesce(sub, dest[key])
    return dest


def _coalesce_values(chart: Chart, v: dict) -> None:
    defaults = copy.deepcopy(chart.values)
    for key, default in defaults.items():
        if key in v:
            value = v[key]
            if value is None:
                v.pop(key)  # a user null deletes the chart's default
            elif _table(value) and _table(default):
                # A subchart's key keeps nulls at this level: the subchart's own coalesce deletes them.
                _coalesce_tables(value, default, keep_nulls=key in chart.dependencies)
            # else: the user's non-map value (a list, a scalar) replaces the default whole.
        else:
            v[key] = default


def _coalesce_tables(dst: dict, src: dict, keep_nulls: bool = False) -> dict:
    """``coalesceTablesFullKey``: ``dst`` (user) wins; a null in ``dst`` deletes the key unless ``keep_nulls``."""
    if not keep_nulls:
        # Helm first copies dst's nulls into src, so a null goes even where the chart has no default.
        for key in [k for k, v in dst.items() if v is None and k not in src]:
            dst.pop(key)
    for key, val in src.items():
        dv = dst.get(key, _MISSING)
        if dv is None and not keep_nulls:
            dst.pop(key)
        elif dv is _MISSING:
            dst[key] = val
        elif _table(val) and _table(dv):
            _coalesce_tables(dv, val, keep_nulls)
        # else: the user's value stands (Helm warns on table/non-table clashes and keeps dst).
    return dst


def get_path(values: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path (``prometheus.prometheusSpec.nodeSelector``); ``default`` if any part is
    missing. Keys that themselves hold dots are not supported (none of the recorded paths needs them)."""
    cur = values
    for part in path.split("."):
        if not _table(cur) or part not in cur:
            return default
        cur = cur[part]
    return cur


def has_path(values: Any, path: str) -> bool:
    return get_path(values, path, _MISSING) is not _MISSING


def condition_enabled(values: dict, condition: str | None) -> bool:
    """A dependency's ``condition`` (pkg/chartutil/dependencies.go ``processDependencyConditions``): the
    comma-separated paths are tried in order and the first that holds a bool decides; none: enabled."""
    if not condition:
        return True
    for path in condition.split(","):
        v = get_path(values, path.strip(), _MISSING)
        if isinstance(v, bool):
            return v
    return True


def truthy(v: Any) -> bool:
    """Go template truth (``if``/``with``): false, 0, nil, and empty strings, maps and lists are false."""
    return bool(v)
