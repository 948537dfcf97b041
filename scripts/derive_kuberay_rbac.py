"""Derive KubeRay's RBAC facts -- what the operator chart grants, and what the operator binds to a RayCluster's
head for the Ray autoscaler -- from the KubeRay source of the pinned release.

    python -m scripts.derive_kuberay_rbac --git-dir <kuberay.git> [--rev v1.7.0] [--check]
    python -m scripts.derive_kuberay_rbac --source <kuberay checkout at v1.7.0> [--check]

The source is not part of a user's clone (any clone of github.com/ray-project/kuberay will do). What the tests read
is this script's output, committed as ``tests/reference/rbac/kuberay-<version>.json``: data only --

- ``chart``: from ``helm-chart/kuberay-operator/templates``, each RBAC template's kind, the condition it renders
  under (its ``{{- if ... }}`` line, verbatim), where its namespaces come from, and its rules: the operator's
  (``role.consistentRules`` in ``_helpers.tpl``, each rule with the template condition it sits under, if any) or
  the template's own (leader election);
- ``autoscaler``: the Role ``BuildRole`` in ``ray-operator/controllers/ray/common/rbac.go`` builds for a RayCluster
  with in-tree autoscaling, and the ServiceAccount ``BuildRoleBinding`` binds it to
  (``utils.GetHeadGroupServiceAccountName``: the head template's ``serviceAccountName``, else the cluster's name).

A template or function whose shape this parser does not know is an error, never a guess: a new KubeRay release
gets a new derivation or none.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from config import versions

ROOT = Path(__file__).resolve().parent.parent
KUBERAY_VERSION = f"v{versions.KUBERAY_OPERATOR_CHART}"
DEFAULT_OUT = ROOT / "tests" / "reference" / "rbac" / f"kuberay-{KUBERAY_VERSION}.json"
CHART = "helm-chart/kuberay-operator/templates"
HELPERS = f"{CHART}/_helpers.tpl"
# The RBAC templates of the operator chart: what each renders and how its namespace is chosen.
TEMPLATES = {
    "role.yaml": {"kind": "ClusterRole", "rules": "operator"},
    "rolebinding.yaml": {"kind": "ClusterRoleBinding", "role": "role.yaml"},
    "multiple_namespaces_role.yaml": {"kind": "Role", "rules": "operator"},
    "multiple_namespaces_rolebinding.yaml": {"kind": "RoleBinding", "role": "multiple_namespaces_role.yaml"},
    "leader_election_role.yaml": {"kind": "Role", "rules": "own"},
    "leader_election_role_binding.yaml": {"kind": "RoleBinding", "role": "leader_election_role.yaml"},
}
RBAC_GO = "ray-operator/controllers/ray/common/rbac.go"
UTIL_GO = "ray-operator/controllers/ray/utils/util.go"

_IF = re.compile(r"^\s*\{\{-?\s*if\s+(?P<cond>.*?)\s*-?\}\}\s*$")
_END = re.compile(r"^\s*\{\{-?\s*end\s*-?\}\}\s*$")
_RANGE_NS = re.compile(r"^\s*\{\{-?\s*\$watchNamespaces\s*:=\s*(?P<expr>.*?)\s*-?\}\}\s*$")
_DIRECTIVE = re.compile(r"^\s*\{\{.*\}\}\s*$")


class DeriveError(Exception):
    pass


# ------------------------------------------------------------------------------------------ reading the source
class Source:
    """Files of a KubeRay checkout, or of a revision in a git directory."""

    def __init__(self, source: Path | None = None, git_dir: Path | None = None, rev: str = KUBERAY_VERSION) -> None:
        self.source, self.git_dir, self.rev = source, git_dir, rev

    def read(self, path: str) -> str:
        if self.source is not None:
            return (self.source / path).read_text()
        r = subprocess.run(["git", f"--git-dir={self.git_dir}", "show", f"{self.rev}:{path}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise DeriveError(f"{self.rev}:{path}: {r.stderr.strip()}")
        return r.stdout

    def commit(self) -> str | None:
        if self.git_dir is None:
            return None
        r = subprocess.run(["git", f"--git-dir={self.git_dir}", "rev-parse", f"{self.rev}^{{commit}}"],
                           capture_output=True, text=True, check=True)
        return r.stdout.strip()


# ------------------------------------------------------------------------------------------ Helm templates
def define_body(text: str, name: str) -> list[str]:
    """The lines of ``{{- define "name" -}}`` up to its own ``end``."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.search(rf'define\s+"{re.escape(name)}"', line)), None)
    if start is None:
        raise DeriveError(f"no define {name!r}")
    depth = 0
    body: list[str] = []
    for line in lines[start + 1:]:
        if _IF.match(line):
            depth += 1
        elif _END.match(line) or re.match(r"^\s*\{\{-?\s*end\s*-?\}\}", line):
            if depth == 0:
                return body
            depth -= 1
        body.append(line)
    raise DeriveError(f"define {name!r} has no end")


def conditional_rules(lines: list[str]) -> list[dict]:
    """RBAC rules from a template body whose list items may sit under ``{{- if COND }}`` blocks: each rule, with
    ``when`` (the conditions it sits under, outermost first) when it has any."""
    chunks: list[tuple[tuple[str, ...], list[str]]] = []
    conds: list[str] = []
    for line in lines:
        m = _IF.match(line)
        if m:
            conds.append(m.group("cond"))
            continue
        if _END.match(line) or re.match(r"^\s*\{\{-?\s*end\s*-?\}\}", line):
            if not conds:
                raise DeriveError(f"an end without an if: {line!r}")
            conds.pop()
            continue
        if _DIRECTIVE.match(line) or "{{" in line:
            raise DeriveError(f"a template directive this parser does not know: {line.strip()!r}")
        if line.strip() in ("", "rules:"):
            continue
        if line.startswith("- "):
            chunks.append((tuple(conds), [line]))
        elif chunks:
            chunks[-1][1].append(line)
        else:
            raise DeriveError(f"text before the first rule: {line!r}")
    out = []
    for when, chunk in chunks:
        (rule,) = yaml.safe_load("\n".join(chunk))
        if set(rule) - {"apiGroups", "resources", "verbs", "resourceNames"}:
            raise DeriveError(f"a rule with fields this parser does not know: {rule}")
        out.append({**rule, **({"when": list(when)} if when else {})})
    return out


def template_condition(text: str) -> str:
    """The condition the whole template renders under (its first line)."""
    first = text.lstrip().splitlines()[0]
    m = _IF.match(first)
    if not m:
        raise DeriveError(f"the template does not start with an if: {first!r}")
    return m.group("cond")


def template_namespace(text: str) -> dict:
    """Where the template's objects go: the release namespace, or each of the watched namespaces."""
    for line in text.splitlines():
        m = _RANGE_NS.match(line)
        if m:
            if m.group("expr") != "default (list .Release.Namespace) .Values.watchNamespace":
                raise DeriveError(f"watched namespaces from an unknown expression: {m.group('expr')!r}")
            return {"namespaces": "each of .Values.watchNamespace, default [.Release.Namespace]"}
    if "namespace: {{ .Release.Namespace }}" in text or "kind: Cluster" in text:
        return {"namespaces": ".Release.Namespace" if "kind: Cluster" not in text else "cluster-wide"}
    raise DeriveError("no namespace this parser knows")


def chart_facts(src: Source) -> dict:
    helpers = src.read(HELPERS)
    operator_rules = conditional_rules(define_body(helpers, "role.consistentRules"))
    templates: dict[str, dict] = {}
    for name, shape in TEMPLATES.items():
        text = src.read(f"{CHART}/{name}")
        kind = re.search(r"^kind:\s*(\S+)", text, re.M)
        if kind is None or kind.group(1) != shape["kind"]:
            raise DeriveError(f"{name}: kind {kind.group(1) if kind else None}, expected {shape['kind']}")
        entry: dict[str, Any] = {"kind": shape["kind"], "when": template_condition(text), **template_namespace(text)}
        if shape.get("rules") == "operator":
            if 'include "role.consistentRules"' not in text:
                raise DeriveError(f"{name}: does not include role.consistentRules")
            entry["rules"] = "operator"
        elif shape.get("rules") == "own":
            body = text.split("rules:", 1)[1].splitlines()
            entry["rules"] = conditional_rules([line for line in body if not re.match(r"^\s*\{\{-?\s*end", line)])
        else:
            entry["role"] = shape["role"]
            subject = re.search(r"subjects:\s*\n- kind: (\S+)\s*\n\s+name: \{\{ include \"([^\"]+)\"", text)
            if subject is None or subject.group(1) != "ServiceAccount" or \
                    subject.group(2) != "kuberay-operator.serviceAccount.name":
                raise DeriveError(f"{name}: its subject is not the operator's ServiceAccount")
            entry["subject"] = "the operator's ServiceAccount (.Values.serviceAccount.name) in .Release.Namespace"
        templates[name] = entry
    return {"operator_rules": operator_rules, "templates": templates}


# ------------------------------------------------------------------------------------------ Go
def go_function(text: str, name: str) -> str:
    m = re.search(rf"^func (\([^)]*\) )?{re.escape(name)}\(.*?^}}", text, re.M | re.S)
    if m is None:
        raise DeriveError(f"no func {name}")
    return m.group(0)


def _strings(expr: str) -> list[str]:
    return re.findall(r'"([^"]*)"', expr)


def go_policy_rules(body: str) -> list[dict]:
    """``rbacv1.PolicyRule{APIGroups: []string{...}, Resources: []string{...}, Verbs: []string{...}}`` literals."""
    rules = []
    for m in re.finditer(r"\{\s*APIGroups:\s*\[\]string\{([^}]*)\},\s*Resources:\s*\[\]string\{([^}]*)\},\s*"
                         r"Verbs:\s*\[\]string\{([^}]*)\},?\s*\}", body):
        groups = [g if g else "" for g in _strings(m.group(1))]
        rules.append({"apiGroups": groups, "resources": _strings(m.group(2)), "verbs": _strings(m.group(3))})
    if not rules or body.count("APIGroups:") != len(rules):
        raise DeriveError("PolicyRules this parser cannot read")
    return rules


def autoscaler_facts(src: Source) -> dict:
    rbac = src.read(RBAC_GO)
    role = go_function(rbac, "BuildRole")
    if "Name:      cluster.Name" not in role.replace("\t", " ") and not re.search(r"Name:\s+cluster\.Name,", role):
        raise DeriveError("BuildRole: the Role is not named after the cluster")
    binding = go_function(rbac, "BuildRoleBinding")
    if "utils.GetHeadGroupServiceAccountName(cluster)" not in binding or "rbacv1.ServiceAccountKind" not in binding:
        raise DeriveError("BuildRoleBinding: the subject is not the head group's ServiceAccount")
    util = go_function(src.read(UTIL_GO), "GetHeadGroupServiceAccountName")
    if "cluster.Spec.HeadGroupSpec.Template.Spec.ServiceAccountName" not in util or "return cluster.Name" not in util:
        raise DeriveError("GetHeadGroupServiceAccountName: not the head template's serviceAccountName, else the name")
    return {
        "role": {"name": "the RayCluster's name", "namespace": "the RayCluster's", "rules": go_policy_rules(role)},
        "binding": {"subject": "ServiceAccount",
                    "service_account": "spec.headGroupSpec.template.spec.serviceAccountName, else metadata.name"},
        "when": "spec.enableInTreeAutoscaling",
    }


# ------------------------------------------------------------------------------------------ output
def derive(src: Source) -> str:
    data = {"kuberay": KUBERAY_VERSION, "commit": src.commit(), "derived_by": "scripts/derive_kuberay_rbac.py",
            "files": sorted([HELPERS, *(f"{CHART}/{n}" for n in TEMPLATES), RBAC_GO, UTIL_GO]),
            "chart": chart_facts(src), "autoscaler": autoscaler_facts(src)}
    if data["commit"] is None:
        del data["commit"]
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", type=Path, help="a KubeRay checkout at the pinned release")
    where.add_argument("--git-dir", type=Path, help="a KubeRay git directory (with --rev)")
    ap.add_argument("--rev", default=KUBERAY_VERSION)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    ns = ap.parse_args(argv)
    try:
        text = derive(Source(ns.source, ns.git_dir, ns.rev))
    except (DeriveError, OSError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if ns.check:
        if not ns.out.is_file() or ns.out.read_text() != text:
            print(f"stale: {ns.out} (run python -m scripts.derive_kuberay_rbac without --check)", file=sys.stderr)
            return 1
        return 0
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(text)
    print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
