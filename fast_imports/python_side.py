"""The Python half: an import finder that runs a provider's ``__init__`` minus its submodule imports.

A provider package's ``__init__`` ends with one ``from . import <submodule>`` per resource type; defining all
those classes takes ~11 s for AWS. ``LazyProviderFinder`` sits in front of the normal finder for the provider
packages only and runs their real ``__init__`` (docstring, helpers, ``from ._jsii import *`` which loads the jsii
assembly, ``publication.publish()``) minus that trailing block. A submodule is imported on first use:
``from pkg.vpc import Vpc`` as before, ``pkg.vpc`` through a module ``__getattr__``, or when the jsii runtime meets
one of its types (``_hook_jsii``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Iterable, Sequence
from types import CodeType, ModuleType
from typing import Any

from .shape import UnsupportedLayout, is_lazy_init, parse_init, split_init

log = logging.getLogger(__name__)

# package -> {normalised jsii submodule name -> python submodule name}, for the jsii hook.
_LAZY: dict[str, dict[str, str]] = {}


def _warn(pkg: str, why: str) -> None:
    print(f"warning: fast imports off for {pkg} ({why}); importing it the plain, slower way", file=sys.stderr)


def _normalise(name: str) -> str:
    # jsii submodule "lexv2ModelsIntent" is Python module "lexv2_models_intent": compare without case or "_".
    return name.replace("_", "").lower()


def _jsii_hook_target() -> Any:  # jsii._reference_map: untyped runtime internals
    import jsii._reference_map as rm

    fn = getattr(rm, "_try_import_type_module", None)
    if not callable(fn) or not isinstance(getattr(rm, "_assembly_to_module", None), dict):
        raise UnsupportedLayout("jsii runtime has no on-demand type import hook")
    return rm


def _hook_jsii(package: str, submodules: Iterable[str]) -> None:
    """Teach jsii to import a submodule when the kernel hands back a type from one not imported yet.

    jsii resolves such types through ``_try_import_type_module`` (its own lazy-loading support), which needs a
    submodule map our provider packages do not ship; we answer for our packages and defer to jsii otherwise."""
    rm = _jsii_hook_target()
    table: dict[str, str] = {}
    for sub in submodules:
        key = _normalise(sub)
        if key in table:
            raise UnsupportedLayout(f"submodules {table[key]!r} and {sub!r} are indistinguishable to jsii")
        table[key] = sub
    _LAZY[package] = table
    original = rm._try_import_type_module
    if getattr(original, "_ray_eks_lazy", False):
        return

    def try_import_type_module(class_fqn: str) -> bool:
        parts = class_fqn.split(".")
        pkg = rm._assembly_to_module.get(parts[0])
        sub = _LAZY.get(pkg, {}).get(_normalise(parts[1])) if pkg and len(parts) > 2 else None
        if sub and f"{pkg}.{sub}" not in sys.modules:
            importlib.import_module(f"{pkg}.{sub}")
            return True
        return original(class_fqn)

    try_import_type_module._ray_eks_lazy = True  # type: ignore[attr-defined]
    rm._try_import_type_module = try_import_type_module


def _lazy_attributes(module: ModuleType, package: str, submodules: Sequence[str]) -> None:
    subs = frozenset(submodules)

    def __getattr__(name: str) -> ModuleType:
        if name in subs:
            return importlib.import_module(f"{package}.{name}")  # also binds it on the package
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | subs)

    # Through __dict__: mypy rejects assigning ModuleType's special methods as attributes.
    module.__dict__.update(__getattr__=__getattr__, __dir__=__dir__)


class _LazyPackageLoader(importlib.machinery.SourceFileLoader):
    """The package's own loader (resources, file name), running the trimmed ``__init__``."""

    def __init__(self, fullname: str, path: str, tree: ast.Module, submodules: list[str]) -> None:
        super().__init__(fullname, path)
        self._tree = tree
        self._submodules = submodules

    def get_code(self, fullname: str | None) -> CodeType:
        return compile(self._tree, self.path, "exec", dont_inherit=True)

    def exec_module(self, module: ModuleType) -> None:
        super().exec_module(module)
        # publication.publish() swapped in a public module; that is what importers get.
        _lazy_attributes(sys.modules.get(module.__name__, module), module.__name__, self._submodules)


class LazyProviderFinder(importlib.abc.MetaPathFinder):
    def __init__(self, packages: Iterable[str]) -> None:
        self.packages = set(packages)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None:
            return None  # not installed: the normal ImportError follows
        try:
            if not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or not spec.origin:
                raise UnsupportedLayout("not a plain source package")
            with open(spec.origin, encoding="utf-8") as fh:
                tree = parse_init(fh.read(), spec.origin)
            if is_lazy_init(tree):
                # jsii-pacmak's own PEP 562 loading (and _SUBMODULE_FQN_MAP for the runtime): nothing to add.
                log.debug("fast imports: %s loads its submodules lazily already; left alone", fullname)
                return spec
            tree, submodules = split_init(tree, fullname)
            _hook_jsii(fullname, submodules)
        except (UnsupportedLayout, OSError, ImportError) as e:
            _warn(fullname, str(e))
            return spec
        spec.loader = _LazyPackageLoader(fullname, spec.origin, tree, submodules)
        return spec

