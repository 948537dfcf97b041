"""Deployment packages the stacks build at synth: deterministic zips (fixed timestamps and modes, stored, not
deflated), so the same source gives the same bytes -- and the same source_code_hash -- on every machine."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path

from cdktf import App
from constructs import Construct

from constructs_lib.orchestrator import FunctionPackage

PACKAGES_DIR = "packages"  # under the app's output directory; TerraformAsset copies each into its stack
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip of ``name -> content`` entries in name order, with nothing from the file system in it."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix, whatever builds it
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            zf.writestr(info, files[name])
    return buf.getvalue()


def function_package(scope: Construct, name: str, modules: list[Path],
                     files: Mapping[str, bytes] | None = None) -> FunctionPackage:
    """Write ``<outdir>/packages/<name>.zip`` holding ``modules`` and ``files`` (name -> bytes: the function's own
    configuration) at its root; its path and base64 SHA-256."""
    data = zip_bytes({**{m.name: m.read_bytes() for m in modules}, **(files or {})})
    out = Path(App.of(scope).outdir) / PACKAGES_DIR / f"{name}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return FunctionPackage(path=str(out), sha256_base64=base64.b64encode(hashlib.sha256(data).digest()).decode())
