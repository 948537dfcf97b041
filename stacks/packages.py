"""Deployment packages the stacks build at synth: deterministic zips (constructs_lib/archives.py), so the same
source gives the same bytes -- and the same source_code_hash -- on every machine."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path

from cdktf import App
from constructs import Construct

from constructs_lib.archives import deterministic_zip
from constructs_lib.orchestrator import FunctionPackage

PACKAGES_DIR = "packages"  # under the app's output directory; TerraformAsset copies each into its stack


def function_package(scope: Construct, name: str, modules: list[Path],
                     files: Mapping[str, bytes] | None = None) -> FunctionPackage:
    """Write ``<outdir>/packages/<name>.zip`` holding ``modules`` and ``files`` (name -> bytes: the function's own
    configuration) at its root; its path and base64 SHA-256."""
    data = deterministic_zip({**{m.name: m.read_bytes() for m in modules}, **(files or {})})
    out = Path(App.of(scope).outdir) / PACKAGES_DIR / f"{name}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return FunctionPackage(path=str(out), sha256_base64=base64.b64encode(hashlib.sha256(data).digest()).decode())
