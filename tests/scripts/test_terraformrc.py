"""scripts/terraformrc.sh (every make command runs it): the CLI config for a local provider mirror, and the cached
answer that spares later make commands a search of the filesystem."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "terraformrc.sh"


def _run(out: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "TF_PROVIDER_MIRROR"}
    r = subprocess.run(["bash", str(SCRIPT), str(out)], env={**base, **env}, capture_output=True, text=True,
                       timeout=120, check=True)
    return r.stdout.strip()


def _mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io" / "hashicorp" / "aws").mkdir(parents=True)
    return mirror


def test_a_named_mirror_is_written_and_the_answer_is_reused(tmp_path):
    mirror, out = _mirror(tmp_path), tmp_path / "build" / "terraformrc"
    assert _run(out, TF_PROVIDER_MIRROR=str(mirror)) == str(out)
    assert f'path    = "{mirror}"' in out.read_text()
    # Without the variable the cached file is reused as it is (a search would find this machine's own mirror).
    assert _run(out) == str(out) and f'path    = "{mirror}"' in out.read_text()


def test_a_mirror_that_is_gone_is_looked_for_again(tmp_path):
    mirror, out = _mirror(tmp_path), tmp_path / "terraformrc"
    _run(out, TF_PROVIDER_MIRROR=str(mirror))
    mirror.rename(tmp_path / "moved")
    printed = _run(out)  # this machine's own mirror, or none: never the one that is gone
    assert printed in ("", str(out))
    assert not out.exists() or f'path    = "{mirror}"' not in out.read_text()


def test_no_mirror_is_remembered(tmp_path):
    """The answer 'none' is cached too: later calls print nothing at once, whatever the machine has."""
    out = tmp_path / "terraformrc"
    Path(f"{out}.none").touch()
    assert _run(out) == "" and not out.exists()
    # A named mirror still wins, and replaces the 'none'.
    mirror = _mirror(tmp_path)
    assert _run(out, TF_PROVIDER_MIRROR=str(mirror)) == str(out)
    assert not Path(f"{out}.none").exists()
