"""Load the prebuilt cdktf provider packages lazily: synth pays only for the resources it uses.

A provider package loads every resource type it has (2,135 for AWS) while a stack uses a few dozen, twice: in
Python (``python_side``: an import finder) and in the jsii kernel's node process (``node_side``, which preloads
``lazy_require.js``). Each side checks the generated file's shape on every run (``shape`` for the ``__init__``,
a line grammar in ``lazy_require.js`` for ``index.js``); a package in a shape it does not know loads the plain
way with one ``warning:`` line on stderr: slower, never wrong. A package that is lazy already is left alone.
``RAY_EKS_PLAIN_IMPORTS=1`` turns all of this off (the baseline). The synthesized JSON is identical either way
(tests/fast_imports/test_fast_synth.py). README.md next to this file: the numbers, and when to delete it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence

from .node_side import ENV_PACKAGES, NODE_HOOK, install_node_hook, uninstall_node_hook
from .python_side import LazyProviderFinder
from .shape import UnsupportedLayout, analyse_init, is_lazy_init

__all__ = [
    "ENV_PACKAGES", "ENV_PLAIN", "NODE_HOOK", "PROVIDER_PACKAGES", "PROVIDER_PREFIX", "LazyProviderFinder",
    "UnsupportedLayout", "analyse_init", "install", "installed_providers", "is_lazy_init", "plain_imports_requested",
    "uninstall",
]

ENV_PLAIN = "RAY_EKS_PLAIN_IMPORTS"
# Python package -> npm package (what the jsii kernel's node process loads for it).
PROVIDER_PACKAGES = {
    "cdktf_cdktf_provider_aws": "@cdktf/provider-aws",
    "cdktf_cdktf_provider_kubernetes": "@cdktf/provider-kubernetes",
    "cdktf_cdktf_provider_helm": "@cdktf/provider-helm",
}
PROVIDER_PREFIX = "cdktf_cdktf_provider_"


def plain_imports_requested(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENV_PLAIN, "").strip().lower() not in ("", "0", "false", "no")


def install(packages: Iterable[str] = tuple(PROVIDER_PACKAGES)) -> bool:
    """Lazy provider imports on both sides of jsii; a no-op with the opt-out set. Idempotent.

    Call it before anything imports cdktf: the node half only reaches a kernel process started after it.
    Returns whether it is active."""
    if plain_imports_requested():
        return False
    packages = list(packages)
    finder = next((f for f in sys.meta_path if isinstance(f, LazyProviderFinder)), None)
    if finder is None:
        sys.meta_path.insert(0, LazyProviderFinder(packages))
        _warn_unknown_providers(set(PROVIDER_PACKAGES) | set(packages))
    else:
        finder.packages.update(packages)
    install_node_hook(PROVIDER_PACKAGES[p] for p in packages if p in PROVIDER_PACKAGES)
    return True


def uninstall() -> None:
    """Undo install() for imports and node processes started from now on (tests)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, LazyProviderFinder)]
    uninstall_node_hook()


def installed_providers(paths: Sequence[str] | None = None) -> list[str]:
    """The ``cdktf_cdktf_provider_*`` packages importable from ``paths`` (default sys.path).

    A directory scan, not pkgutil.iter_modules: that lists every package's directory (2,135 entries for AWS)."""
    found: set[str] = set()
    for entry in sys.path if paths is None else paths:
        try:
            with os.scandir(entry or ".") as it:
                found.update(e.name for e in it if e.name.startswith(PROVIDER_PREFIX) and "." not in e.name
                             and e.is_dir())
        except OSError:
            continue  # a zip, a missing directory
    return sorted(found)


def _warn_unknown_providers(known: set[str]) -> None:
    # A provider we have no npm name for (and never checked) takes the plain path on both sides: say so once.
    for name in installed_providers():
        if name not in known:
            print(f"warning: fast imports do not know provider package {name} (not in fast_imports."
                  "PROVIDER_PACKAGES); it loads the plain, slower way", file=sys.stderr)
