"""Deterministic zips: the same files make the same bytes on every machine (so the same asset hash, the same
source_code_hash, the same image tag). Stored, not deflated; entries in name order with a fixed timestamp and mode,
nothing from the file system."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def deterministic_zip(files: Mapping[str, bytes]) -> bytes:
    """A zip of ``name -> content`` entries whose bytes depend on the names and contents only."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix, whatever builds it: extractors then use the mode below
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            zf.writestr(info, files[name])
    return buf.getvalue()
