"""Deliberate, documented exceptions to checkov checks, attached to the element they concern.

``skip(resource, "CKV_AWS_144", "why")`` writes the exception into the synthesized JSON, next to the
metadata cdktf keeps under the element's ``"//"`` (comment) key, which Terraform ignores::

    "//": {"metadata": {...}, "checkov": {"skip": [{"id": "CKV_AWS_144", "comment": "why"}]}}

That is the shape proposed for cdktf in checkov issue #4634. checkov 3.3's ``terraform_json``
framework does not read any inline skip yet (neither this nor ``checkov:skip=`` strings: its runner
passes no skip list to the checks), so ``tools/checkov/scan.py`` applies these entries to checkov's
results: a failed check with a matching entry on its element counts as skipped, with the reason.

Resources take the entry as a ``//.checkov.skip`` override (cdktf merges it with its metadata). Data
sources rewrite ``"//"`` at synth and drop overrides there: build them from ``skippable(DataAwsX)``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, TypeVar

from cdktf import TerraformDataSource, TerraformElement

CHECK_ID_RE = re.compile(r"^CKV2?_[A-Z0-9]+_\d+\Z", re.ASCII)
SKIP_PATH = "//.checkov.skip"

T = TypeVar("T")


def skip(element: TerraformElement, check_id: str, reason: str) -> None:
    """Record that ``element`` deliberately does not follow ``check_id``, and why."""
    if not CHECK_ID_RE.match(check_id):
        raise ValueError(f"not a checkov check id: {check_id!r}")
    if len(reason.strip()) < 20:
        raise ValueError(f"{check_id}: give the reason for skipping it in a sentence, got {reason!r}")
    is_data = TerraformDataSource.is_terraform_data_source(element)
    if is_data and not getattr(type(element), "_checkov_skippable", False):
        raise TypeError(f"{element.node.path}: cdktf drops overrides of a data source's '//'; "
                        f"create it from skippable({type(element).__name__}) to skip checks on it")
    # Accumulated on the element itself: each override replaces the whole list.
    entries: list[dict[str, str]] = getattr(element, "_checkov_skips", None) or []
    if any(e["id"] == check_id for e in entries):
        raise ValueError(f"{check_id} is already skipped on {element.node.path}")
    entries.append({"id": check_id, "comment": reason.strip()})
    element._checkov_skips = entries  # type: ignore[attr-defined]
    if not is_data:
        # A path override deep-merges into "//": cdktf's own "//".metadata stays.
        element.add_override(SKIP_PATH, list(entries))


def _inject(synthesized: Any, element: Any) -> Any:
    entries = getattr(element, "_checkov_skips", None)
    if entries and isinstance(synthesized, dict):
        for by_type in (synthesized.get("data") or {}).values():
            for body in by_type.values():
                if isinstance(body, dict):
                    body.setdefault("//", {})["checkov"] = {"skip": list(entries)}
    return synthesized


@functools.cache
def skippable(data_source_class: type[T]) -> type[T]:
    """``data_source_class`` whose synthesized ``"//"`` also carries the skips given to ``skip()``."""

    class Skippable(data_source_class):  # type: ignore[valid-type, misc]
        _checkov_skippable = True

        # jsii calls these Python overrides when cdktf synthesizes the element.
        def to_terraform(self) -> Any:
            return _inject(super().to_terraform(), self)

        def to_hcl_terraform(self) -> Any:
            return _inject(super().to_hcl_terraform(), self)

    Skippable.__name__ = Skippable.__qualname__ = f"Skippable{data_source_class.__name__}"
    return Skippable
