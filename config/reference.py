"""Print the config reference (markdown) from the typed config: `python -m config.reference`.

README.md embeds this output; tests/config/test_reference.py keeps the two in step.
"""

from __future__ import annotations

import ast
import functools
import inspect
import io
import json
import textwrap
import tokenize
import typing

from pydantic import BaseModel

from config import AppConfig


def _type_name(annotation) -> str:
    """Readable type: validated aliases (Annotated) show as their base type."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, dict) and args:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in args)
    if isinstance(annotation, type):
        return "None" if annotation is type(None) else annotation.__name__
    return str(annotation).replace("typing.", "").replace("config.models.", "").replace("NoneType", "None")


# Comments addressed to tools, not readers: never part of a description.
TOOL_PRAGMAS = ("type:", "noqa", "pragma:", "fmt:")


@functools.cache
def _comments(cls: type[BaseModel]) -> dict[str, str]:
    """What each field of ``cls`` means, from its source: the comment block right above the field and a comment at
    the end of its line (the code's comments are the one owner of the descriptions; a pydantic ``description``
    wins where a field has one). A nested section without a comment takes its model's docstring."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT
                and not tok.string.lstrip("#").strip().startswith(TOOL_PRAGMAS)}
    out = {}
    for node in typing.cast(ast.ClassDef, ast.parse(source).body[0]).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        n = node.lineno - 1
        while n >= 1 and lines[n - 1].lstrip().startswith("#"):
            above.insert(0, comments[n])
            n -= 1
        trailing = [comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1) if n in comments]
        out[node.target.id] = " ".join(above + trailing)
    return out


def _description(cls: type[BaseModel], name: str) -> str:
    field = cls.model_fields[name]
    text = field.description or _comments(cls).get(name, "")
    if not text:
        annotation = field.annotation
        nested = next((a for a in (annotation, *typing.get_args(annotation))
                       if isinstance(a, type) and issubclass(a, BaseModel)), None)
        text = " ".join((nested.__doc__ or "").split()) if nested else ""
    return text.replace("|", "/")


def _default(model: BaseModel, name: str) -> str:
    value = getattr(model, name)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} item(s), see the example files"
    return f"`{json.dumps(value)}`"


def rows(model: BaseModel, prefix: str = "") -> typing.Iterator[tuple[str, str, str, str]]:
    for name, field in type(model).model_fields.items():
        key = f"{prefix}{name}"
        value = getattr(model, name)
        yield key, _type_name(field.annotation), _default(model, name), _description(type(model), name)
        if isinstance(value, BaseModel):
            yield from rows(value, f"{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            yield from item_rows(type(value[0]), f"{key}[].")


def item_rows(cls: type[BaseModel], prefix: str) -> typing.Iterator[tuple[str, str, str, str]]:
    """Fields of a list item (a node group, a worker group): their own defaults, or required."""
    for name, field in cls.model_fields.items():
        if field.is_required():
            default = "required"
        else:
            value = field.get_default(call_default_factory=True)
            if isinstance(value, BaseModel):
                default = "(section)"
            elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
                default = "`[]`"
            else:
                default = f"`{json.dumps(value)}`"
        yield f"{prefix}{name}", _type_name(field.annotation), default, _description(cls, name)


def markdown() -> str:
    lines = ["| key | type | default | what it is |", "| --- | --- | --- | --- |"]
    lines += [f"| `{k}` | {t.replace('|', 'or')} | {d} | {w} |" for k, t, d, w in rows(AppConfig())]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
