"""Shapes for the construct tests: the session synths (tests/conftest.py) seen as their infra stack (what users
review) and the config they came from. Each construct is also built alone (``construct_synth``, tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from config import AppConfig


@dataclass(frozen=True)
class Shape:
    name: str
    infra: dict  # the synthesized infra stack
    cfg: AppConfig  # the config it was synthesized from


def _shape(name: str, synth: dict) -> Shape:
    return Shape(name, synth["infra"], synth["_cfg"])


@pytest.fixture(scope="session")
def existing_infra(existing_synth) -> dict:
    return existing_synth["infra"]


@pytest.fixture(scope="session")
def dev_infra(dev_synth) -> dict:
    return dev_synth["infra"]


@pytest.fixture(scope="session")
def default_shape(default_synth) -> Shape:
    return _shape("default", default_synth)


@pytest.fixture(scope="session")
def dev_shape(dev_synth) -> Shape:
    return _shape("dev", dev_synth)


@pytest.fixture(scope="session")
def existing_shape(existing_synth) -> Shape:
    return _shape("existing", existing_synth)


@pytest.fixture(scope="session")
def edge_shape(edge_synth) -> Shape:
    """The config's edges (tests/helpers.py edge_config): longest names, admins without the creator, a
    pinned add-on, FSx without data repository and with backups."""
    return _shape("edge", edge_synth)


@pytest.fixture(scope="session", params=["default", "dev", "existing"])
def shape(request) -> Shape:
    """Every synthesized config, one at a time."""
    return request.getfixturevalue(f"{request.param}_shape")


@pytest.fixture(scope="session", params=["default", "dev"])
def created_network_shape(request) -> Shape:
    """The configs whose network the stack creates (not an existing VPC)."""
    return request.getfixturevalue(f"{request.param}_shape")


@pytest.fixture(scope="session", params=["default", "existing"])
def gpu_shape(request) -> Shape:
    """The configs with a GPU node group."""
    return request.getfixturevalue(f"{request.param}_shape")
