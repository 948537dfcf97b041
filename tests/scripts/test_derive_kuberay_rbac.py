"""The committed KubeRay RBAC facts (tests/reference/rbac/) are what scripts/derive_kuberay_rbac.py makes of the
KubeRay source at the pinned release, and the parser reads the shapes it claims to and refuses the rest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from scripts import derive_kuberay_rbac as derive

# A KubeRay git directory or checkout, when this machine has one: $RAY_EKS_KUBERAY_SOURCE.
SOURCE = os.environ.get("RAY_EKS_KUBERAY_SOURCE")


@pytest.mark.skipif(not SOURCE, reason="no KubeRay source here ($RAY_EKS_KUBERAY_SOURCE: a git dir or checkout)")
def test_committed_facts_are_what_the_script_derives_from_upstream():
    path = Path(SOURCE)  # type: ignore[arg-type]
    src = derive.Source(git_dir=path) if (path / "HEAD").is_file() else derive.Source(source=path)
    assert derive.derive(src) == derive.DEFAULT_OUT.read_text(), "run: python -m scripts.derive_kuberay_rbac"


def test_committed_facts_hold_what_the_escalation_model_reads():
    facts = json.loads(derive.DEFAULT_OUT.read_text())
    assert facts["kuberay"] == derive.KUBERAY_VERSION
    templates = facts["chart"]["templates"]
    assert {t["kind"] for t in templates.values()} == {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    for t in templates.values():
        assert t["when"] and t["namespaces"] and ("rules" in t or t["subject"].startswith("the operator's"))
    rules = facts["chart"]["operator_rules"]
    assert {"apiGroups": [""], "resources": ["pods"],
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]} in rules
    assert any("secrets" in r["resources"] and "get" in r["verbs"] for r in rules)
    auto = facts["autoscaler"]
    assert auto["when"] == "spec.enableInTreeAutoscaling"
    assert {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]} in auto["role"]["rules"]


# ------------------------------------------------------------------------------------------ the parser
HELPERS = '''{{- define "other" -}}
x
{{- end -}}
{{- define "role.consistentRules" -}}
rules:
- apiGroups:
  - ""
  resources:
  - pods
  verbs:
  - create
{{- if .featureOn }}
- apiGroups:
  - extra.io
  resources:
  - things
  verbs:
  - get
{{- end -}}
{{- end -}}
'''


def test_conditional_rules_keep_the_condition_they_sit_under():
    rules = derive.conditional_rules(derive.define_body(HELPERS, "role.consistentRules"))
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
                     {"apiGroups": ["extra.io"], "resources": ["things"], "verbs": ["get"], "when": [".featureOn"]}]


@pytest.mark.parametrize("lines, message", [
    (["- apiGroups: [x]", "  {{ .Values.more | toYaml }}"], "directive"),
    (["  resources: [x]"], "before the first rule"),
    (["- apiGroups: [x]", "  resources: [y]", "  verbs: [z]", "  nonResourceURLs: [/]"], "fields"),
])
def test_what_the_parser_does_not_know_is_an_error(lines, message):
    with pytest.raises(derive.DeriveError, match=message):
        derive.conditional_rules(lines)


def test_template_conditions_and_namespaces():
    text = '{{- if and .Values.a (not .Values.b) }}\nkind: Role\nmetadata:\n  namespace: {{ .Release.Namespace }}\n'
    assert derive.template_condition(text) == "and .Values.a (not .Values.b)"
    assert derive.template_namespace(text) == {"namespaces": ".Release.Namespace"}
    with pytest.raises(derive.DeriveError, match="watched namespaces"):
        derive.template_namespace("{{- $watchNamespaces := list .Values.other }}\n")


def test_go_policy_rules():
    body = '''func BuildRole() {
\tRules: []rbacv1.PolicyRule{
\t\t{
\t\t\tAPIGroups: []string{""},
\t\t\tResources: []string{"pods", "pods/log"},
\t\t\tVerbs:     []string{"get", "list"},
\t\t},
\t},
}'''
    assert derive.go_policy_rules(body) == [{"apiGroups": [""], "resources": ["pods", "pods/log"],
                                             "verbs": ["get", "list"]}]
    with pytest.raises(derive.DeriveError):
        derive.go_policy_rules(body.replace("Resources:", "NonResourceURLs:"))
