"""Load the prebuilt cdktf provider packages lazily: synth pays only for the resources it uses.

A provider package loads every resource type it has (2,135 for AWS) while a stack uses a few dozen, twice:

* Python: the package ``__init__`` ends with one ``from . import <submodule>`` per resource type; defining
  all those classes takes ~11 s for AWS. ``install()`` puts an import finder in front of the normal one for
  these packages only. It runs the package's real ``__init__`` (docstring, helpers, ``from ._jsii import *``
  which loads the jsii assembly, ``publication.publish()``) minus that trailing run of submodule imports. A
  submodule is imported on first use: ``from pkg.vpc import Vpc`` as before, ``pkg.vpc`` through a module
  ``__getattr__``, or when the jsii runtime meets one of its types (``_hook_jsii``).
* node (the jsii kernel child): loading the assembly requires the npm package's ``lib/index.js``, which
  requires every resource module (~4 s and ~800 MB for AWS + Kubernetes). A script preloaded through
  NODE_OPTIONS, which the child inherits, turns those re-exports into getters (``NODE_LAZY_REQUIRE``).

Each side checks the generated file's shape on every run (an AST whitelist for the ``__init__``, a line
grammar for ``index.js``). If a provider upgrade changes it, or the jsii runtime lacks the on-demand type
import hook, that package loads the plain way and one warning line goes to stderr: slower, never wrong.
``RAY_EKS_PLAIN_IMPORTS=1`` turns all of this off (the baseline). The synthesized JSON is identical either
way (tests/stacks/test_fast_synth.py).
"""

from __future__ import annotations

import ast
import atexit
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import shutil
import sys
import tempfile
from typing import Iterable, Optional

ENV_PLAIN = "RAY_EKS_PLAIN_IMPORTS"
# Python package -> npm package (what the jsii kernel's node process loads for it).
PROVIDER_PACKAGES = {
    "cdktf_cdktf_provider_aws": "@cdktf/provider-aws",
    "cdktf_cdktf_provider_kubernetes": "@cdktf/provider-kubernetes",
    "cdktf_cdktf_provider_helm": "@cdktf/provider-helm",
}
NODE_HOOK_FILE = "ray_eks_lazy_require.js"

# package -> {normalised jsii submodule name -> python submodule name}, for the jsii hook.
_LAZY: dict[str, dict[str, str]] = {}
_node_hook: Optional[str] = None  # this process's preload script, once written


NODE_LAZY_REQUIRE = r'''"use strict";
// Preloaded (node --require) into the jsii kernel process: a provider's lib/index.js re-exports every
// resource's submodule; define each as a getter that requires it on first use instead.
const fs = require("fs");
const Module = require("module");
const path = require("path");
const PACKAGES = new Set(__PACKAGES__);

function providerPackage(filename) {
  // <package root>/lib/index.js, wherever jsii unpacked it (its package cache, through a symlink).
  if (path.basename(filename) !== "index.js" || path.basename(path.dirname(filename)) !== "lib") return null;
  try {
    const name = JSON.parse(fs.readFileSync(path.join(path.dirname(filename), "..", "package.json"), "utf8")).name;
    return PACKAGES.has(name) ? name : null;
  } catch (e) { return null; }
}
const REEXPORT = /^exports\.([A-Za-z_$][\w$]*) = require\("(\.\/[\w.-]+)"\);$/;
const HOIST = /^(exports\.[A-Za-z_$][\w$]* = )+void 0;$/;
const KNOWN = new Set(['"use strict";', 'Object.defineProperty(exports, "__esModule", { value: true });']);

function plan(content) {
  const exportsTo = [];
  let inComment = false;
  for (const raw of content.split(/\r?\n/)) {
    const line = raw.trim();
    const close = line.indexOf("*/");
    if (close >= 0 && close !== line.length - 2) return { why: "code after a comment" };
    if (inComment) { inComment = close < 0; continue; }
    if (line === "" || line.startsWith("//") || KNOWN.has(line) || HOIST.test(line)) continue;
    if (line.startsWith("/*")) { inComment = close < 0; continue; }
    const m = REEXPORT.exec(line);
    if (!m) return { why: `unexpected line ${JSON.stringify(line.slice(0, 80))}` };
    exportsTo.push([m[1], m[2]]);
  }
  return exportsTo.length ? { exportsTo } : { why: "no re-exports" };
}

function warn(msg) {
  // jsii's console protocol: the Python side prints it to its stderr.
  const line = `warning: fast imports off for node ${msg}; loading it the plain, slower way\n`;
  process.stderr.write(JSON.stringify({ stderr: Buffer.from(line).toString("base64") }) + "\n");
}

const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  const pkg = providerPackage(filename);
  if (!pkg) return compile.call(this, content, filename);
  const p = plan(content);
  if (!p.exportsTo) { warn(`${pkg} (${p.why})`); return compile.call(this, content, filename); }
  const mod = this;
  Object.defineProperty(mod.exports, "__esModule", { value: true });
  for (const [name, rel] of p.exportsTo) {
    Object.defineProperty(mod.exports, name, {
      enumerable: true, configurable: true,
      get() {
        const value = mod.require(rel);
        Object.defineProperty(mod.exports, name, { value, enumerable: true, writable: true, configurable: true });
        return value;
      },
    });
  }
};
'''


class UnsupportedLayout(Exception):
    """The package (or the jsii runtime) is not in the shape the lazy import relies on."""


def plain_imports_requested(environ=os.environ) -> bool:
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
    else:
        finder.packages.update(packages)
    _install_node_hook([PROVIDER_PACKAGES[p] for p in packages if p in PROVIDER_PACKAGES])
    return True


def uninstall() -> None:
    """Undo install() for imports and node processes started from now on (tests)."""
    global _node_hook
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, LazyProviderFinder)]
    options = os.environ.get("NODE_OPTIONS", "")
    if NODE_HOOK_FILE in options:
        options = _without_hook(options)
        if options:
            os.environ["NODE_OPTIONS"] = options
        else:
            del os.environ["NODE_OPTIONS"]
    _node_hook = None


def _without_hook(node_options: str) -> str:
    return " ".join(t for t in node_options.split() if not t.rstrip('"').endswith(NODE_HOOK_FILE))


def _install_node_hook(npm_packages: list[str]) -> None:
    """Preload NODE_LAZY_REQUIRE into the jsii node child, which inherits our environment (NODE_OPTIONS).

    On load the jsii kernel requires the provider's lib/index.js, which requires all 2,135 resource modules
    (247 MB of JavaScript for AWS): ~4 s and most of node's memory. The script makes those re-exports getters.
    """
    global _node_hook
    if not npm_packages or (_node_hook and _node_hook in os.environ.get("NODE_OPTIONS", "")):
        return
    tmp = tempfile.mkdtemp(prefix="ray-eks-node-")
    atexit.register(shutil.rmtree, tmp, True)
    script = os.path.join(tmp, NODE_HOOK_FILE)
    with open(script, "w", encoding="utf-8") as fh:
        fh.write(NODE_LAZY_REQUIRE.replace("__PACKAGES__", json.dumps(sorted(npm_packages))))
    if any(c in script for c in '"\\') or any(c.isspace() for c in script):
        print(f"warning: fast imports off for node (temp dir {tmp!r} needs quoting); loading providers the plain way",
              file=sys.stderr)
        return
    options = os.environ.get("NODE_OPTIONS", "")
    if NODE_HOOK_FILE in options:  # inherited from a parent process: its file goes when that process exits
        options = _without_hook(options)
    os.environ["NODE_OPTIONS"] = f'{options} --require="{script}"'.strip()
    _node_hook = script


def _warn(pkg: str, why: str) -> None:
    print(f"warning: fast imports off for {pkg} ({why}); importing it the plain, slower way", file=sys.stderr)


def _is_submodule_import(node: ast.stmt) -> bool:
    return (isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None
            and all(a.asname is None and a.name != "*" for a in node.names))


def _is_publish_call(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and ast.unparse(node.value) == "publication.publish()")


def analyse_init(source: str, package: str, filename: str = "<init>") -> tuple[ast.Module, list[str]]:
    """Split a provider ``__init__`` into (everything but the submodule imports, submodule names).

    Raises UnsupportedLayout naming the first statement we do not recognise."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as e:
        raise UnsupportedLayout(f"cannot parse __init__: {e.msg}") from None
    body = tree.body
    tail_start = len(body)
    while tail_start > 0 and _is_submodule_import(body[tail_start - 1]):
        tail_start -= 1
    head, tail = body[:tail_start], body[tail_start:]
    submodules = [a.name for node in tail for a in node.names]
    if not submodules:
        raise UnsupportedLayout("__init__ does not end with 'from . import <submodule>' lines")
    names = set(submodules)

    all_names: Optional[list[str]] = None
    for i, node in enumerate(head):
        where = f"line {node.lineno}"
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            continue  # docstring
        if _is_submodule_import(node):
            raise UnsupportedLayout(f"{where}: submodule import before the final block")
        if isinstance(node, ast.Import):
            if any(a.name == package or a.name.startswith(package + ".") for a in node.names):
                raise UnsupportedLayout(f"{where}: absolute import of the package itself")
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and not (node.module == package
                                                        or node.module.startswith(package + ".")):
                continue
            if node.level == 1 and node.module == "_jsii" and [a.name for a in node.names] == ["*"]:
                continue  # loads the jsii assembly: kept
            raise UnsupportedLayout(f"{where}: unexpected import {ast.unparse(node)!r}")
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "__all__":
                if not (isinstance(node.value, (ast.List, ast.Tuple)) and all(
                        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts)):
                    raise UnsupportedLayout(f"{where}: __all__ is not a literal list of names")
                all_names = [e.value for e in node.value.elts]
            continue
        if isinstance(node, ast.FunctionDef) and not node.decorator_list:
            continue
        if _is_publish_call(node):
            continue
        raise UnsupportedLayout(f"{where}: unexpected statement {ast.unparse(node).splitlines()[0][:80]!r}")

    # A kept statement that names a submodule would have seen it bound by the plain import.
    for node in head:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in names:
                raise UnsupportedLayout(f"line {n.lineno}: uses submodule {n.id!r} in __init__")
    if all_names is None or set(all_names) != names:
        raise UnsupportedLayout("__all__ differs from the submodules imported")
    return ast.Module(body=head, type_ignores=[]), submodules


def _normalise(name: str) -> str:
    # jsii submodule "lexv2ModelsIntent" is Python module "lexv2_models_intent": compare without case or "_".
    return name.replace("_", "").lower()


def _jsii_hook_target():
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


def _lazy_attributes(module, package: str, submodules: list[str]) -> None:
    subs = frozenset(submodules)

    def __getattr__(name: str):
        if name in subs:
            return importlib.import_module(f"{package}.{name}")  # also binds it on the package
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(module.__dict__) | subs)

    module.__getattr__ = __getattr__
    module.__dir__ = __dir__


class _LazyPackageLoader(importlib.machinery.SourceFileLoader):
    """The package's own loader (resources, file name), running the trimmed ``__init__``."""

    def __init__(self, fullname: str, path: str, tree: ast.Module, submodules: list[str]) -> None:
        super().__init__(fullname, path)
        self._tree = tree
        self._submodules = submodules

    def get_code(self, fullname):
        return compile(self._tree, self.path, "exec", dont_inherit=True)

    def exec_module(self, module) -> None:
        super().exec_module(module)
        # publication.publish() swapped in a public module; that is what importers get.
        _lazy_attributes(sys.modules.get(module.__name__, module), module.__name__, self._submodules)


class LazyProviderFinder(importlib.abc.MetaPathFinder):
    def __init__(self, packages: Iterable[str]) -> None:
        self.packages = set(packages)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.packages:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None:
            return None  # not installed: the normal ImportError follows
        try:
            if not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or not spec.origin:
                raise UnsupportedLayout("not a plain source package")
            with open(spec.origin, encoding="utf-8") as fh:
                source = fh.read()
            tree, submodules = analyse_init(source, fullname, spec.origin)
            _hook_jsii(fullname, submodules)
        except (UnsupportedLayout, OSError, ImportError) as e:
            _warn(fullname, str(e))
            return spec
        spec.loader = _LazyPackageLoader(fullname, spec.origin, tree, submodules)
        return spec
