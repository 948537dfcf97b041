"""The regions' Availability Zones (``config/regions.yaml``, built by scripts/build_region_catalogue.py): what
``network.az_count`` and ``network.availability_zones`` are checked against at synth. Loaded on first use."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

CATALOGUE = Path(__file__).resolve().parent / "regions.yaml"


@lru_cache(maxsize=1)
def _zones() -> dict[str, tuple[str, ...]]:
    return {r: tuple(z) for r, z in yaml.safe_load(CATALOGUE.read_text())["regions"].items()}


def availability_zones(region: str) -> tuple[str, ...] | None:
    """The region's AZ names, or None for a region the catalogue does not know (not checked at synth)."""
    return _zones().get(region)
