"""Amazon States Language as Step Functions evaluates it (JSONPath mode), for the subset our definitions use:
reference paths (``$.a.b``), Parameters/ResultSelector with ``.$`` keys, the intrinsics ``States.UUID``,
``States.Format`` and ``States.MathAdd``, ResultPath, Choice rules (``StringEquals``, ``NumericLessThanEquals``),
Catch, Fail with ErrorPath/CausePath, Succeed. An expression outside the subset raises: a definition may only use
what this evaluates, and a path that does not resolve fails as it would at run time (States.Runtime).

Task results come from the test (``task(state_name, parameters)``): no AWS call is made."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_INTRINSIC = re.compile(r"^(States\.[A-Za-z]+)\((.*)\)$", re.S)


class PathError(Exception):
    """A reference path that does not resolve: Step Functions fails the execution with States.Runtime."""


class TaskError(Exception):
    """A task's error, as the Lambda integration reports it (error name = the function's exception type)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


def get_path(data: Any, path: str) -> Any:
    if path == "$":
        return data
    if not path.startswith("$."):
        raise PathError(f"not a reference path: {path!r}")
    value = data
    for part in path[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            raise PathError(f"{path} does not resolve")
        value = value[part]
    return value


def set_path(data: Any, path: str, value: Any) -> Any:
    """ResultPath: a copy of ``data`` with ``value`` at ``path`` (``$``: the value replaces the input)."""
    if path == "$":
        return copy.deepcopy(value)
    out = copy.deepcopy(data)
    node = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PathError(f"{path}: {part} is not an object")
    node[parts[-1]] = copy.deepcopy(value)
    return out


def _split_args(text: str) -> list[str]:
    args, depth, quote, cur = [], 0, False, ""
    for i, c in enumerate(text):
        if quote:
            cur += c
            if c == "'" and text[i - 1] != "\\":
                quote = False
        elif c == "'":
            quote, cur = True, cur + c
        elif c == "(":
            depth, cur = depth + 1, cur + c
        elif c == ")":
            depth, cur = depth - 1, cur + c
        elif c == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip():
        args.append(cur.strip())
    return args


def intrinsic(expr: str, data: Any) -> Any:
    m = _INTRINSIC.match(expr.strip())
    if not m:
        raise ValueError(f"not an intrinsic function: {expr!r}")
    name, raw = m.groups()
    args = [_argument(a, data) for a in _split_args(raw)]
    if name == "States.UUID" and not args:
        return str(uuid.uuid4())
    if name == "States.Format":
        template, values = args[0], args[1:]
        pieces = template.split("{}")
        if len(pieces) != len(values) + 1:
            raise ValueError(f"{expr}: {len(values)} values for {len(pieces) - 1} placeholders")
        if any(isinstance(v, (dict, list)) for v in values):
            raise ValueError(f"{expr}: States.Format takes strings, numbers, booleans or null")
        return "".join(p + (str(values[i]) if i < len(values) else "") for i, p in enumerate(pieces))
    if name == "States.MathAdd" and len(args) == 2 and all(isinstance(a, int) for a in args):
        return args[0] + args[1]
    raise ValueError(f"intrinsic outside the modelled subset: {expr}")


def _argument(text: str, data: Any) -> Any:
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("\\'", "'")
    if text.startswith("$"):
        return get_path(data, text)
    if text.startswith("States."):
        return intrinsic(text, data)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    raise ValueError(f"argument outside the modelled subset: {text!r}")


def evaluate(template: Any, data: Any) -> Any:
    """Parameters / ResultSelector: keys ending in ``.$`` take a path or an intrinsic, the rest is literal."""
    if isinstance(template, list):
        return [evaluate(v, data) for v in template]
    if not isinstance(template, dict):
        return template
    out = {}
    for k, v in template.items():
        if k.endswith(".$"):
            if not isinstance(v, str):
                raise ValueError(f"{k} must be a path or an intrinsic")
            out[k[:-2]] = intrinsic(v, data) if v.startswith("States.") else get_path(data, v)
        else:
            out[k] = evaluate(v, data)
    return out


def _rule_matches(rule: dict, data: Any) -> bool:
    value = get_path(data, rule["Variable"])
    if "StringEquals" in rule:
        return isinstance(value, str) and value == rule["StringEquals"]
    if "NumericLessThanEquals" in rule:
        return isinstance(value, (int, float)) and value <= rule["NumericLessThanEquals"]
    raise ValueError(f"Choice rule outside the modelled subset: {rule}")


@dataclass
class Execution:
    status: str  # SUCCEEDED or FAILED
    output: Any
    states: list[str] = field(default_factory=list)  # entered, in order
    waited_seconds: int = 0
    error: str | None = None
    cause: str | None = None


def run(definition: dict, execution_input: Any, task: Callable[[str, dict], Any],
        max_states: int = 10_000) -> Execution:
    states = definition["States"]
    name, data = definition["StartAt"], execution_input
    ex = Execution(status="RUNNING", output=None)
    while len(ex.states) < max_states:
        ex.states.append(name)
        s = states[name]
        kind = s["Type"]
        if kind == "Pass":
            result = evaluate(s["Parameters"], data) if "Parameters" in s else s.get("Result", data)
            data = set_path(data, s.get("ResultPath", "$"), result)
        elif kind == "Task":
            params = evaluate(s.get("Parameters", {}), data)
            try:
                result = task(name, params)
                if "ResultSelector" in s:
                    result = evaluate(s["ResultSelector"], result)
                data = set_path(data, s.get("ResultPath", "$"), result)
            except TaskError as e:
                catch = next((c for c in s.get("Catch", [])
                              if "States.ALL" in c["ErrorEquals"] or e.error in c["ErrorEquals"]), None)
                if catch is None:
                    ex.status, ex.error, ex.cause = "FAILED", e.error, e.cause
                    return ex
                data = set_path(data, catch.get("ResultPath", "$"), {"Error": e.error, "Cause": e.cause})
                name = catch["Next"]
                continue
        elif kind == "Wait":
            ex.waited_seconds += s["Seconds"]
        elif kind == "Choice":
            name = next((r["Next"] for r in s["Choices"] if _rule_matches(r, data)), s.get("Default"))
            if name is None:
                raise PathError("no Choice rule matched and there is no Default (States.NoChoiceMatched)")
            continue
        elif kind == "Succeed":
            ex.status, ex.output = "SUCCEEDED", data
            return ex
        elif kind == "Fail":
            ex.status, ex.output = "FAILED", data
            ex.error = intrinsic(s["ErrorPath"], data) if s.get("ErrorPath", "").startswith("States.") else (
                get_path(data, s["ErrorPath"]) if "ErrorPath" in s else s.get("Error"))
            ex.cause = intrinsic(s["CausePath"], data) if s.get("CausePath", "").startswith("States.") else (
                get_path(data, s["CausePath"]) if "CausePath" in s else s.get("Cause"))
            return ex
        else:
            raise ValueError(f"state type outside the modelled subset: {kind}")
        if s.get("End"):
            ex.status, ex.output = "SUCCEEDED", data
            return ex
        name = s["Next"]
    raise AssertionError(f"more than {max_states} states: the loop does not end")
