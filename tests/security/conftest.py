"""Fixtures for the security tests: the scanner module and one deliberately unsafe synth."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, load_stacks, run_app

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


# Allowed but dangerous: an API endpoint open to the internet and no destroy protection, on a
# persistent file system (so the final-backup switch shows). The gate must catch the first.
OPEN_UNPROTECTED = {
    "name": "ray-open",
    "cluster": {"public_access_cidrs": ["0.0.0.0/0"]},
    "fsx": {"deployment_type": "PERSISTENT_2", "storage_capacity_gib": 1200},
    "protection": {"prevent_destroy": False},
}


@dataclass(frozen=True)
class Synth:
    run: subprocess.CompletedProcess
    outdir: Path
    stacks: dict[str, dict]


@pytest.fixture(scope="session")
def open_synth(tmp_path_factory) -> Synth:
    """main.py run (a subprocess, as users do) on OPEN_UNPROTECTED; stderr kept for the warnings."""
    base = tmp_path_factory.mktemp("synth-open")
    config = base / "open.yaml"
    config.write_text(yaml.safe_dump(OPEN_UNPROTECTED, sort_keys=False))
    out = base / "cdktf.out"
    r = run_app(config=config, outdir=out)
    assert r.returncode == 0, f"synth of the open config failed:\n{r.stderr[-3000:]}"
    return Synth(r, out, load_stacks(out))
