"""The fast_imports API: install(), uninstall() and the opt-out."""

from __future__ import annotations

import os
import sys

import fast_imports
from fast_imports import ENV_PLAIN, LazyProviderFinder


def _finders() -> int:
    return sum(isinstance(f, LazyProviderFinder) for f in sys.meta_path)


def test_install_is_idempotent_and_uninstall_undoes_it(clean_install):
    assert fast_imports.install() and fast_imports.install([])
    assert _finders() == 1
    fast_imports.uninstall()
    assert _finders() == 0 and "NODE_OPTIONS" not in os.environ


def test_opt_out_leaves_the_interpreter_alone(clean_install, monkeypatch):
    monkeypatch.setenv(ENV_PLAIN, "1")
    monkeypatch.setenv("NODE_OPTIONS", "--max-old-space-size=512")
    before = list(sys.meta_path)
    assert fast_imports.install() is False
    assert sys.meta_path == before and os.environ["NODE_OPTIONS"] == "--max-old-space-size=512"


def test_plain_imports_requested_reads_the_usual_spellings():
    assert not any(fast_imports.plain_imports_requested({ENV_PLAIN: v}) for v in ("", "0", "false", "No", " "))
    assert all(fast_imports.plain_imports_requested({ENV_PLAIN: v}) for v in ("1", "true", "yes"))
    assert not fast_imports.plain_imports_requested({})

