"""Fixtures for the security tests: the scanner module. (The deliberately unsafe synth, ``open_synth``, is a session
synth of tests/conftest.py.)"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.helpers import ROOT

SCAN_PY = ROOT / "tools" / "checkov" / "scan.py"


def load_scan_module():
    """tools/checkov/scan.py (stdlib only; it runs checkov from its own venv)."""
    spec = importlib.util.spec_from_file_location("checkov_scan", SCAN_PY)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def scan():
    return load_scan_module()
