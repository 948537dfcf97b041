"""Deliberate, documented exceptions to checkov checks, attached to the resource they concern.

``skip(resource, "CKV_AWS_144", "why")`` writes the exception into the synthesized JSON, next to the
metadata cdktf keeps under the resource's ``"//"`` (comment) key, which Terraform ignores::

    "//": {"metadata": {...}, "checkov": {"skip": [{"id": "CKV_AWS_144", "comment": "why"}]}}

That is the shape proposed for cdktf in checkov issue #4634. checkov 3.3's ``terraform_json``
framework does not read any inline skip yet (neither this nor ``checkov:skip=`` strings: its runner
passes no skip list to the checks), so ``tools/checkov/scan.py`` applies these entries to checkov's
results: a failed check with a matching entry on its resource counts as skipped, with the reason.
"""

from __future__ import annotations

import re

from cdktf import TerraformElement

CHECK_ID_RE = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")
SKIP_PATH = "//.checkov.skip"


def skip(resource: TerraformElement, check_id: str, reason: str) -> None:
    """Record that ``resource`` deliberately does not follow ``check_id``, and why."""
    if not CHECK_ID_RE.match(check_id):
        raise ValueError(f"not a checkov check id: {check_id!r}")
    if len(reason.strip()) < 20:
        raise ValueError(f"{check_id}: give the reason for skipping it in a sentence, got {reason!r}")
    # Accumulated on the resource itself: each override replaces the whole list.
    entries: list[dict[str, str]] = getattr(resource, "_checkov_skips", None) or []
    if any(e["id"] == check_id for e in entries):
        raise ValueError(f"{check_id} is already skipped on {resource.node.path}")
    entries.append({"id": check_id, "comment": reason.strip()})
    resource._checkov_skips = entries  # type: ignore[attr-defined]
    # A path override deep-merges into "//": cdktf's own "//".metadata stays.
    resource.add_override(SKIP_PATH, list(entries))
