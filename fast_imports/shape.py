"""Shape checks of a provider package's generated Python ``__init__`` (the jsii-pacmak output).

The lazy loader runs an ``__init__`` minus its trailing ``from . import <submodule>`` block. That is only safe
for statements we know, so anything else is rejected (``UnsupportedLayout``) and the package loads the plain
way. An ``__init__`` that is lazy already (jsii-pacmak >= 1.135 emits a PEP 562 ``__getattr__``) is recognised
separately: there is nothing to trim.
"""

from __future__ import annotations

import ast


class UnsupportedLayout(Exception):
    """The package (or the jsii runtime) is not in the shape the lazy import relies on."""


def parse_init(source: str, filename: str = "<init>") -> ast.Module:
    try:
        return ast.parse(source, filename)
    except SyntaxError as e:
        raise UnsupportedLayout(f"cannot parse __init__: {e.msg}") from None


def is_lazy_init(tree: ast.Module) -> bool:
    """Whether the ``__init__`` already loads its submodules on first use: a module ``__getattr__`` and no
    top-level ``from . import <submodule>`` (jsii's lazy output keeps those under ``if typing.TYPE_CHECKING``)."""
    has_getattr = any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)
    eager = any(isinstance(n, ast.ImportFrom) and n.level == 1 and n.module is None for n in tree.body)
    return has_getattr and not eager


def analyse_init(source: str, package: str, filename: str = "<init>") -> tuple[ast.Module, list[str]]:
    """Split a provider ``__init__`` into (everything but the submodule imports, submodule names).

    Raises UnsupportedLayout naming the first statement we do not recognise."""
    return split_init(parse_init(source, filename), package)


def split_init(tree: ast.Module, package: str) -> tuple[ast.Module, list[str]]:
    """``analyse_init`` for an already parsed ``__init__``."""
    body = tree.body
    tail_start = len(body)
    while tail_start > 0 and _is_submodule_import(body[tail_start - 1]):
        tail_start -= 1
    head, tail = body[:tail_start], body[tail_start:]
    submodules = [a.name for node in tail if isinstance(node, ast.ImportFrom) for a in node.names]
    if not submodules:
        raise UnsupportedLayout("__init__ does not end with 'from . import <submodule>' lines")

    all_names: list[str] | None = None
    for i, node in enumerate(head):
        if i == 0 and _is_docstring(node):
            continue
        names = _check_statement(node, package)
        if names is not None:
            all_names = names
    _check_no_submodule_use(head, set(submodules))
    if all_names is None or set(all_names) != set(submodules):
        raise UnsupportedLayout("__all__ differs from the submodules imported")
    return ast.Module(body=head, type_ignores=[]), submodules


def _check_statement(node: ast.stmt, package: str) -> list[str] | None:
    """Raise unless ``node`` is a statement the trimmed ``__init__`` may keep; return ``__all__``'s names if it
    assigns them."""
    where = f"line {node.lineno}"
    if _is_submodule_import(node):
        raise UnsupportedLayout(f"{where}: submodule import before the final block")
    if isinstance(node, ast.Import):
        if any(a.name == package or a.name.startswith(package + ".") for a in node.names):
            raise UnsupportedLayout(f"{where}: absolute import of the package itself")
        return None
    if isinstance(node, ast.ImportFrom):
        if node.level == 0 and node.module and not (node.module == package or node.module.startswith(package + ".")):
            return None
        if node.level == 1 and node.module == "_jsii" and [a.name for a in node.names] == ["*"]:
            return None  # loads the jsii assembly: kept
        raise UnsupportedLayout(f"{where}: unexpected import {ast.unparse(node)!r}")
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return _all_names(node, where) if node.targets[0].id == "__all__" else None
    if isinstance(node, ast.FunctionDef) and not node.decorator_list:
        if node.name in ("__getattr__", "__dir__"):  # the loader installs its own
            raise UnsupportedLayout(f"{where}: __init__ defines its own {node.name}")
        return None
    if _is_publish_call(node):
        return None
    raise UnsupportedLayout(f"{where}: unexpected statement {ast.unparse(node).splitlines()[0][:80]!r}")


def _all_names(node: ast.Assign, where: str) -> list[str]:
    elts = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else None
    names = [e.value for e in elts or () if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    if elts is None or len(names) != len(elts):
        raise UnsupportedLayout(f"{where}: __all__ is not a literal list of names")
    return names


def _check_no_submodule_use(head: list[ast.stmt], submodules: set[str]) -> None:
    # A kept statement that names a submodule would have seen it bound by the plain import.
    for node in head:
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in submodules:
                raise UnsupportedLayout(f"line {n.lineno}: uses submodule {n.id!r} in __init__")


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_submodule_import(node: ast.stmt) -> bool:
    return (isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None
            and all(a.asname is None and a.name != "*" for a in node.names))


def _is_publish_call(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and ast.unparse(node.value) == "publication.publish()")
