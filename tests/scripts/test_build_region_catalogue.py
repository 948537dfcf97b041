"""scripts/build_region_catalogue.py: the committed config/regions.yaml is what it derives from the pinned moto's table
of the regions' Availability Zones, and config validation reads that file."""

from __future__ import annotations

import yaml

from config.regions import CATALOGUE, availability_zones
from scripts.build_region_catalogue import build, main


def test_the_committed_catalogue_is_the_scripts_output():
    assert CATALOGUE.read_text() == build(), "run: python -m scripts.build_region_catalogue"
    assert main(["--check"]) == 0


def test_availability_zones_only_and_names_of_their_region():
    regions = yaml.safe_load(CATALOGUE.read_text())["regions"]
    assert len(regions) >= 30 and {"us-west-2", "eu-west-1", "us-east-1"} <= set(regions)
    for region, zones in regions.items():
        assert zones and all(z.startswith(region) and len(z) == len(region) + 1 for z in zones), region
    assert availability_zones("us-west-2") == ("us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d")
    assert availability_zones("xx-nowhere-1") is None


def test_a_stale_catalogue_is_reported(tmp_path, monkeypatch, capsys):
    import scripts.build_region_catalogue as script

    stale = tmp_path / "regions.yaml"
    stale.write_text("regions: {}\n")
    monkeypatch.setattr(script, "OUT", stale)
    monkeypatch.setattr(script, "ROOT", tmp_path)
    assert main(["--check"]) == 1
    assert "regions.yaml is not what the installed moto gives" in capsys.readouterr().err
