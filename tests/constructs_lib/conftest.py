"""Fixtures for the construct tests: each construct is checked through the infra stack's JSON (what users
review), for every config shape we synthesize: defaults, the dev example and prod in an existing VPC."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from config import AppConfig, load_config, parse_config
from tests.helpers import ROOT, edge_config, edge_synth, prod_existing_vpc_config, prod_existing_vpc_synth


@dataclass(frozen=True)
class Shape:
    name: str
    infra: dict  # the synthesized infra stack
    cfg: AppConfig  # the config it was synthesized from


@pytest.fixture(scope="session")
def existing_synth(tmp_path_factory) -> dict[str, dict]:
    return prod_existing_vpc_synth(tmp_path_factory)


@pytest.fixture(scope="session")
def edge_shape(tmp_path_factory) -> Shape:
    """The config's edges (tests/helpers.py edge_config): longest names, admins without the creator, a
    pinned add-on, FSx without data repository and with backups."""
    return Shape("edge", edge_synth(tmp_path_factory)["infra"], parse_config(edge_config()))


@pytest.fixture(scope="session")
def existing_infra(existing_synth) -> dict:
    return existing_synth["infra"]


@pytest.fixture(scope="session")
def dev_infra(dev_synth) -> dict:
    return dev_synth["infra"]


@pytest.fixture(scope="session")
def default_shape(infra) -> Shape:
    return Shape("default", infra, AppConfig())


@pytest.fixture(scope="session")
def dev_shape(dev_infra) -> Shape:
    return Shape("dev", dev_infra, load_config(str(ROOT / "config" / "examples" / "dev-cpu.yaml")))


@pytest.fixture(scope="session")
def existing_shape(existing_infra) -> Shape:
    return Shape("existing", existing_infra, parse_config(prod_existing_vpc_config()))


@pytest.fixture(scope="session", params=["default", "dev", "existing"])
def shape(request) -> Shape:
    """Every synthesized config, one at a time."""
    return request.getfixturevalue(f"{request.param}_shape")


@pytest.fixture(scope="session", params=["default", "dev"])
def created_network_shape(request) -> Shape:
    """The configs whose network the stack creates (not an existing VPC)."""
    return request.getfixturevalue(f"{request.param}_shape")
