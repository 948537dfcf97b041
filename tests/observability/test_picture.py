"""docs/observability-dashboard.png: drawn by scripts/render_dashboard.py (matplotlib, real Prometheus data from a
local Ray head) from the provisioned dashboard it names, and linked from docs/observability.md. Redrawing needs Ray,
Prometheus and minutes of workload, so the test checks the picture's stamp: the sha256 of the dashboard JSON it was
drawn from, which changes when the dashboard does."""

from __future__ import annotations

from scripts.render_dashboard import DEFAULT_OUT, dashboard_sha256, stamped_sha256
from tests.helpers import ROOT


def test_the_picture_shows_the_provisioned_dashboard():
    assert DEFAULT_OUT.is_file()
    assert DEFAULT_OUT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stamped_sha256(DEFAULT_OUT) == dashboard_sha256(), \
        "the dashboard changed since the picture was drawn: python -m scripts.render_dashboard"


def test_the_picture_is_linked_from_the_docs():
    assert "(observability-dashboard.png)" in (ROOT / "docs" / "observability.md").read_text()
