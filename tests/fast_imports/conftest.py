"""Fixtures for the fast_imports tests: a clean install state, and synthetic provider packages to import."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

import fast_imports
from fast_imports import ENV_PACKAGES, ENV_PLAIN, LazyProviderFinder, python_side
from tests.fast_imports.fakes import FAKE_INIT


@pytest.fixture
def clean_install(monkeypatch) -> Iterator[None]:
    """No opt-out, no inherited hook; whatever the test installs is undone, and the session's own install
    (tests/conftest.py) put back: its finder here, its NODE_OPTIONS by monkeypatch."""
    session_finders = [f for f in sys.meta_path if isinstance(f, LazyProviderFinder)]
    monkeypatch.delenv(ENV_PLAIN, raising=False)
    monkeypatch.delenv(ENV_PACKAGES, raising=False)
    monkeypatch.delenv("NODE_OPTIONS", raising=False)
    fast_imports.uninstall()
    yield
    fast_imports.uninstall()
    sys.meta_path[0:0] = session_finders


@pytest.fixture
def fake_provider(tmp_path, monkeypatch, clean_install) -> Iterator[Callable[..., tuple[str, ModuleType]]]:
    """Write fake_provider_<n> (an ``init`` plus ``extra``, submodules alpha and beta) and import it with the
    finder on."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(init: str = FAKE_INIT, extra: str = "") -> tuple[str, ModuleType]:
        name = f"fake_provider_{len(names)}_{tmp_path.name}".replace("-", "_")
        names.append(name)
        pkg = tmp_path / name
        (pkg / "_jsii").mkdir(parents=True)
        (pkg / "_jsii" / "__init__.py").write_text("__jsii_assembly__ = 'fake'\n__all__ = ['__jsii_assembly__']\n")
        for sub in ("alpha", "beta"):
            (pkg / sub).mkdir()
            (pkg / sub / "__init__.py").write_text(f"VALUE = {sub!r}\n")
        (pkg / "__init__.py").write_text(init + extra)
        assert fast_imports.install([name])
        return name, importlib.import_module(name)

    yield make
    for name in names:
        python_side._LAZY.pop(name, None)
        for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[m]
