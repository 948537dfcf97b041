"""The node half: preload ``lazy_require.js`` into the jsii kernel process, which inherits our environment.

On load the jsii kernel requires the provider's ``lib/index.js``, which requires all 2,135 resource modules
(247 MB of JavaScript for AWS): ~4 s and most of node's memory. The preload (``NODE_OPTIONS=--require=...``)
makes those re-exports getters; the npm packages it applies to travel in ``RAY_EKS_LAZY_PACKAGES`` (JSON).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

ENV_PACKAGES = "RAY_EKS_LAZY_PACKAGES"
NODE_HOOK = Path(__file__).resolve().with_name("lazy_require.js")
# What marks our --require in NODE_OPTIONS (ours, a parent's, or a temp copy's): the last two path parts.
HOOK_MARKER = f"{NODE_HOOK.parent.name}/{NODE_HOOK.name}"

_copy: str | None = None  # a temp copy of the hook when its own path cannot go into NODE_OPTIONS unquoted


def install_node_hook(npm_packages: Iterable[str]) -> None:
    """Add the preload to NODE_OPTIONS (once; a hook inherited from a parent is replaced) and name the packages."""
    wanted = set(npm_packages)
    if not wanted:
        return
    script = _hook_path()
    if script is None:
        return
    listed = _listed_packages() if HOOK_MARKER in os.environ.get("NODE_OPTIONS", "") else set()
    os.environ[ENV_PACKAGES] = json.dumps(sorted(listed | wanted))
    options = _without_hook(os.environ.get("NODE_OPTIONS", ""))
    os.environ["NODE_OPTIONS"] = f'{options} --require="{script}"'.strip()


def uninstall_node_hook() -> None:
    """Undo install_node_hook() for node processes started from now on."""
    options = os.environ.get("NODE_OPTIONS", "")
    if HOOK_MARKER in options:
        options = _without_hook(options)
        if options:
            os.environ["NODE_OPTIONS"] = options
        else:
            del os.environ["NODE_OPTIONS"]
    os.environ.pop(ENV_PACKAGES, None)


def _without_hook(node_options: str) -> str:
    return " ".join(t for t in node_options.split() if not t.rstrip('"').endswith(HOOK_MARKER))


def _listed_packages() -> set[str]:
    try:
        names = json.loads(os.environ.get(ENV_PACKAGES, "[]"))
    except ValueError:
        return set()
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def _needs_quoting(path: str) -> bool:
    # _without_hook splits NODE_OPTIONS on whitespace; '"' and '\' would need escaping inside our quotes.
    return any(c in path for c in '"\\') or any(c.isspace() for c in path)


def _hook_path() -> str | None:
    """The hook's own path, or a temp copy of it where that path would need quoting (a checkout under a path
    with spaces); None, with one warning line, when neither will do."""
    global _copy
    if not _needs_quoting(str(NODE_HOOK)):
        return str(NODE_HOOK)
    if _copy is None:
        tmp = tempfile.mkdtemp(prefix="ray-eks-node-")
        atexit.register(shutil.rmtree, tmp, True)
        target = Path(tmp) / HOOK_MARKER
        target.parent.mkdir()
        shutil.copyfile(NODE_HOOK, target)
        _copy = str(target)
    if _needs_quoting(_copy):
        print(f"warning: fast imports off for node (path {_copy!r} needs quoting); loading providers the plain way",
              file=sys.stderr)
        return None
    return _copy
