"""docs/configuration.md's reference is generated from the typed config; this keeps the two in step."""

from __future__ import annotations

from scripts.update_docs import CONFIGURATION, render


def test_config_reference_is_current():
    text = CONFIGURATION.read_text()
    assert render(text) == text, "run: python -m scripts.update_docs"


def test_the_reference_lists_every_section():
    text = CONFIGURATION.read_text()
    for key in ("`name`", "`cluster.node_groups`", "`ray.image.source`", "`training.args`", "`orchestrator.enabled`"):
        assert key in text, key
