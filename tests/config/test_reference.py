"""README's config reference is generated from the typed config; this keeps the two in step."""

from __future__ import annotations

from tests.helpers import ROOT


def test_readme_config_reference_is_current():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from update_readme import render

    readme = (ROOT / "README.md").read_text()
    assert render(readme) == readme, "run: python scripts/update_readme.py"
