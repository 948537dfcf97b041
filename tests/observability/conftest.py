"""Fixtures for the observability tests: Prometheus' binaries (Debian's `prometheus` package: `make test` installs it,
like Graphviz), the prod example's alert props."""

from __future__ import annotations

import shutil

import pytest


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make prometheus` installs it (apt-get install prometheus)")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return _binary("prometheus")
