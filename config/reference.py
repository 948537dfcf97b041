"""Print the config reference (markdown) from the typed config: `python -m config.reference`.

README.md embeds this output; tests/config/test_reference.py keeps the two in step.
"""

from __future__ import annotations

import json
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


def _default(model: BaseModel, name: str) -> str:
    value = getattr(model, name)
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} item(s), see the example files"
    return f"`{json.dumps(value)}`"


def rows(model: BaseModel, prefix: str = "") -> typing.Iterator[tuple[str, str, str]]:
    for name, field in type(model).model_fields.items():
        key = f"{prefix}{name}"
        value = getattr(model, name)
        yield key, _type_name(field.annotation), _default(model, name)
        if isinstance(value, BaseModel):
            yield from rows(value, f"{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            yield from item_rows(type(value[0]), f"{key}[].")


def item_rows(cls: type[BaseModel], prefix: str) -> typing.Iterator[tuple[str, str, str]]:
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
        yield f"{prefix}{name}", _type_name(field.annotation), default


def markdown() -> str:
    lines = ["| key | type | default |", "| --- | --- | --- |"]
    lines += [f"| `{k}` | {t.replace('|', 'or')} | {d} |" for k, t, d in rows(AppConfig())]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
