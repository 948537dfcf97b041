"""Load the config from YAML and turn any problem into one line that names the field and what is allowed.

``load_config`` either returns a valid ``AppConfig`` or raises ``ConfigError``. Locations come from pydantic's
own error locations plus, for cross-field rules, the ``FieldError.loc`` the rule raised: never from parsing
message text.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .models import AppConfig
from .types import FieldError, Location

CONFIG_ENV_VAR = "RAY_EKS_CONFIG"


class ConfigError(Exception):
    """A configuration problem, as one human-readable line."""

    def __init__(self, message: str) -> None:
        # One line, whatever the parts it was built from held (a YAML snippet, a long value).
        super().__init__(" ".join(str(message).split()))


def format_location(parts: Location) -> str:
    """("cluster", "node_groups", 1, "min_size") -> cluster.node_groups[1].min_size"""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 3, 6, 6, 60, 60


def _got(value: object) -> str:
    # Bounded: YAML aliases can make a value of 10^8 items from a few lines.
    text = _SHORT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(error: ErrorDetails) -> tuple[Location, str]:
    """The location and human message of one pydantic error."""
    loc: Location = tuple(error["loc"])
    kind, msg = error["type"], error["msg"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return loc + cause.loc, cause.message
    if kind == "value_error" and cause is not None:
        return loc, str(cause)
    if kind == "extra_forbidden":
        return loc, "unknown key (check the spelling against the config reference in docs/configuration.md)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        # Not "instance of ClusterConfig": the user wrote YAML, not Python.
        return loc, f"must be a mapping of keys, got {_got(error.get('input'))}"
    msg = msg.replace("Input should be", "must be", 1)
    if "input" in error and not isinstance(error["input"], dict):
        got = error["input"]
        if kind == "literal_error" and isinstance(got, float):
            # kubernetes_version: 1.35 unquoted is a YAML number (and 1.30 reads as 1.3).
            msg = f"{msg} (got the number {got!r}: quote the value)"
        elif kind != "literal_error":
            msg = f"{msg} (got {_got(got)})"
    return loc, msg


def format_validation_error(err: ValidationError) -> str:
    loc, msg = _message(err.errors()[0])
    return f"{format_location(loc) or 'config'}: {msg}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (plain YAML keeps the last, silently)."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # <<: *anchor -- construct_mapping merges, explicit keys win
            continue
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value, got a {type(key).__name__}", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (YAML keeps only the last one)", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_config(data: object, source: str = "config") -> AppConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys (name, region, cluster, ...), "
                          f"got {type(data).__name__}")
    try:
        return AppConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {format_validation_error(e)}") from None


def load_config(path: str | None = None) -> AppConfig:
    """Load and validate the config named by ``path`` or ``$RAY_EKS_CONFIG``; defaults when neither."""
    path = path if path is not None else os.environ.get(CONFIG_ENV_VAR)
    if not path:
        return AppConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{CONFIG_ENV_VAR}: no such file {path!r}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{CONFIG_ENV_VAR}: cannot read {path!r} as UTF-8 text: {e}") from None
    if not text.strip():
        raise ConfigError(f"{path}: the file is empty; remove {CONFIG_ENV_VAR} to use the defaults, "
                          "or start from config/examples/")
    try:
        return parse_config(yaml.load(text, Loader=_UniqueKeyLoader), source=str(path))  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    except RecursionError:  # in the YAML parser or in validation
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
