"""The metric names a PromQL expression reads (enough of PromQL for our dashboards' and alerts' expressions, and
Ray's): label matchers, grouping clauses, strings, durations, functions and keywords are not metric names."""

from __future__ import annotations

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                      "offset", "bool", "inf", "nan", "atan2"})
# Grafana's template variables and macros ($__rate_interval, $SessionName, ${datasource}) are not metrics.
_GRAFANA_VAR = re.compile(r"\$\{?[\w]+\}?")


def metric_names(expr: str) -> set[str]:
    # Grafana's label_values(<selector>, <label>) and query_result(<expr>): the label is not a metric.
    expr = re.sub(r"label_values\((.*),\s*\w+\s*\)\s*$", r"(\1)", expr.strip())
    expr = re.sub(r"^query_result\(", "(", expr)
    e = _STRING.sub('""', expr)
    e = _GRAFANA_VAR.sub("1", e)
    e = _MATCHERS.sub("", e)
    e = _RANGE.sub("", e)
    e = _CLAUSE.sub("", e)
    names = set()
    for m in _IDENT.finditer(e):
        name = m.group(1)
        if name.lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]?", name):
            continue
        names.add(name)
    return names


def name_regex_matchers(expr: str) -> list[str]:
    """``{__name__=~"..."}`` selectors: a regex over metric names, not a name."""
    return re.findall(r'__name__\s*=~\s*"([^"]*)"', expr)
