"""The fast_imports API: install(), uninstall(), the opt-out, and a word on provider packages it does not know."""

from __future__ import annotations

import os
import sys

import fast_imports
from fast_imports import ENV_PLAIN, PROVIDER_PACKAGES, LazyProviderFinder


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


def test_installed_known_providers_raise_no_warning(clean_install, capsys):
    assert set(fast_imports.installed_providers()) == set(PROVIDER_PACKAGES)
    assert fast_imports.install()
    assert capsys.readouterr().err == ""


def test_an_unknown_provider_package_gets_one_warning_line(clean_install, capsys, monkeypatch, tmp_path):
    for name in ("cdktf_cdktf_provider_random", "cdktf_cdktf_provider_random-11.0.0.dist-info", "not_a_provider"):
        (tmp_path / name).mkdir()
    (tmp_path / "cdktf_cdktf_provider_random" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert fast_imports.install()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "cdktf_cdktf_provider_random " in err[0], err
    assert "plain, slower way" in err[0]
    assert fast_imports.install() and capsys.readouterr().err == ""  # once per process
