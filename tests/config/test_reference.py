"""docs/configuration.md's reference is generated from the typed config; this keeps the two in step."""

from __future__ import annotations

from config import AppConfig
from config.reference import rows
from scripts.update_docs import CONFIGURATION, render


def test_config_reference_is_current():
    text = CONFIGURATION.read_text()
    assert render(text) == text, "run: python -m scripts.update_docs"


def test_the_reference_lists_every_section():
    text = CONFIGURATION.read_text()
    for key in ("`name`", "`cluster.node_groups`", "`ray.image.source`", "`training.args`", "`orchestrator.enabled`"):
        assert key in text, key


def test_every_key_says_what_it_is():
    """The description column comes from the code's comments (or a pydantic description, or a section's
    docstring): a field added without one fails here."""
    found = list(rows(AppConfig()))
    assert len(found) > 50
    missing = [key for key, _, _, what in found if not what.strip()]
    assert not missing, f"add a comment above these fields in config/models.py: {missing}"


def test_descriptions_come_from_the_comments_above_and_beside_a_field():
    described = {key: what for key, _, _, what in rows(AppConfig())}
    assert described["backend.region"] == "defaults to the deployment's region"  # a comment at the line's end
    assert described["network.availability_zones"].startswith("Empty: the first `az_count` AZs")  # above
    assert described["cluster.node_groups[].role"].startswith("core: system + Ray head")  # pydantic description
    assert described["fsx"].startswith("FSx for Lustre")  # the section's docstring


def test_tool_pragmas_are_not_descriptions():
    described = {key: what for key, _, _, what in rows(AppConfig())}
    assert not [k for k, what in described.items() if "type: ignore" in what or "noqa" in what]
    assert described["cluster.kubernetes_version"]  # its line ends in a type: ignore, yet it is described
