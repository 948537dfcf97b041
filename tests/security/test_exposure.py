"""Exposure: what the deployment opens to the network, and what its IAM roles may touch.

* The Kubernetes API endpoint is private unless ``cluster.public_access_cidrs`` names who may reach it;
  0.0.0.0/0 is allowed (some teams need it) but main.py warns loudly on every synth.
* No security group takes ingress from the whole internet.
* No IAM policy in any stack allows an S3, ECR or FSx action on every resource (``"*"``): workloads
  get their named bucket or repository. The few actions AWS only grants account-wide are listed below.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import one, stack_items, tf_json

DATA_SERVICES = ("s3:", "ecr:", "fsx:")
# Actions that cannot be scoped to a resource (IAM's service authorization reference lists no resource
# type for them), so "*" is the only valid Resource. Patterns, lower case.
ACCOUNT_WIDE_ACTIONS = {
    "fsx:describe*": "FSx Describe* calls are listed account-wide; the CSI driver's DescribeFileSystems "
                     "needs Resource * (it filters by file system id itself)",
    "ecr:getauthorizationtoken": "an ECR login token is account-wide by design; pulls are still limited "
                                 "by the repository actions",
}


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _wildcard_resource(resource: str) -> bool:
    """``*``, or an ARN whose resource part is only a wildcard (``arn:aws:s3:::*``, ``...:repository/*``)."""
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return False
    if parts[2] == "s3":  # arn:aws:s3:::<bucket>/<key>: a wildcard bucket is every bucket
        return parts[5].startswith("*")
    return re.fullmatch(r"\*|[\w-]+/\*", parts[5]) is not None  # arn:...:repository/*


def wildcard_data_grants(statement: dict) -> list[str]:
    """The S3/ECR/FSx actions an Allow statement grants on every resource (not account-wide by design)."""
    # Terraform-side documents (data aws_iam_policy_document) use lower-case keys.
    s = {k.lower(): v for k, v in statement.items()}
    if str(s.get("effect", "Allow")).lower() != "allow":
        return []
    resources = [str(r) for r in _as_list(s.get("resource") or s.get("resources"))]
    if s.get("notresource") or s.get("not_resources"):
        resources = ["*"]  # everything but a few: as wide as it gets
    if not any(_wildcard_resource(r) for r in resources):
        return []
    if s.get("notaction") or s.get("not_actions"):
        return ["NotAction (every other action) on *"]
    bad = []
    for action in (str(a) for a in _as_list(s.get("action") or s.get("actions"))):
        low = action.lower()
        if low == "*" or (low.startswith(DATA_SERVICES)
                          and not any(fnmatch.fnmatchcase(low, p) for p in ACCOUNT_WIDE_ACTIONS)):
            bad.append(action)
    return bad


def iam_statements(stack: dict) -> Iterator[tuple[str, dict]]:
    """(address, statement) of every identity policy in a synthesized stack, inline JSON included."""
    res = stack.get("resource", {})
    docs: list[tuple[str, Any]] = []
    for rtype in ("aws_iam_role_policy", "aws_iam_policy", "aws_iam_user_policy", "aws_iam_group_policy"):
        for name, body in res.get(rtype, {}).items():
            docs.append((f"{rtype}.{name}", body.get("policy")))
    for name, body in res.get("aws_iam_role", {}).items():
        for i, inline in enumerate(_as_list(body.get("inline_policy"))):
            docs.append((f"aws_iam_role.{name}.inline_policy[{i}]", inline.get("policy")))
    for address, policy in docs:
        if not isinstance(policy, str) or re.fullmatch(r"\$\{[^{}]*\}", policy.strip()):
            continue  # a reference to a document (checked below as a data source) or none
        for st in _as_list(tf_json(policy, placeholder="TF_EXPR").get("Statement")):
            yield address, st
    for name, body in stack.get("data", {}).get("aws_iam_policy_document", {}).items():
        for st in _as_list(body.get("statement")):
            yield f"data.aws_iam_policy_document.{name}", st


# ---------------------------------------------------------------- the API endpoint
def test_default_endpoint_is_private(infra):
    vpc = one(infra, "aws_eks_cluster", "ray")["vpc_config"]
    assert vpc["endpoint_private_access"] is True
    assert vpc["endpoint_public_access"] is False
    assert not vpc.get("public_access_cidrs")


def test_examples_keep_the_endpoint_private(dev_synth, prod_synth):
    """dev: the tunnel; prod: its VPN's networks on 443 (tests/stacks/test_api_access.py has the rules)."""
    for synth in (dev_synth, prod_synth):
        vpc = one(synth["infra"], "aws_eks_cluster", "ray")["vpc_config"]
        assert vpc["endpoint_public_access"] is False and vpc["endpoint_private_access"] is True
        assert not vpc.get("public_access_cidrs")


def test_open_endpoint_is_allowed_with_a_loud_warning(open_synth):
    warnings = [line for line in open_synth["_stderr"].splitlines() if line.startswith("warning:")]
    assert any("0.0.0.0/0" in w and "public_access_cidrs" in w for w in warnings), open_synth["_stderr"]
    vpc = one(open_synth["infra"], "aws_eks_cluster", "ray")["vpc_config"]
    assert vpc["public_access_cidrs"] == ["0.0.0.0/0"]


@pytest.mark.parametrize("label", ["default", "dev"])
def test_no_security_group_ingress_from_the_internet(label, request):
    synth = request.getfixturevalue(f"{label}_synth")
    rules = 0
    for stack_name, stack in stack_items(synth):
        res = stack.get("resource", {})
        for name, rule in res.get("aws_vpc_security_group_ingress_rule", {}).items():
            rules += 1
            assert rule.get("cidr_ipv4") != "0.0.0.0/0" and rule.get("cidr_ipv6") != "::/0", f"{stack_name}: {name}"
        for rtype in ("aws_security_group", "aws_default_security_group"):
            for name, sg in res.get(rtype, {}).items():
                for ingress in _as_list(sg.get("ingress")):
                    assert "0.0.0.0/0" not in _as_list(ingress.get("cidr_blocks")), f"{stack_name}: {rtype}.{name}"
    assert rules >= 4, "not vacuous: the Lustre rules at least were read"


# ---------------------------------------------------------------- IAM: no wildcard data access
@pytest.mark.parametrize("label", ["default", "dev"])
def test_no_policy_grants_data_actions_on_every_resource(label, request):
    synth = request.getfixturevalue(f"{label}_synth")
    findings, seen, data_statements = [], 0, 0
    for stack_name, stack in stack_items(synth):
        for address, st in iam_statements(stack):
            seen += 1
            actions = [str(a).lower() for a in _as_list(st.get("Action") or st.get("actions"))]
            data_statements += any(a.startswith(DATA_SERVICES) for a in actions)
            bad = wildcard_data_grants(st)
            if bad:
                findings.append(f"{stack_name}: {address} allows {', '.join(bad)} on every resource")
    assert not findings, "scope these to the named bucket/repository/file system:\n" + "\n".join(findings)
    # Not vacuous: the IRSA and add-on policies were read, S3 and FSx statements among them.
    assert seen >= 3 and data_statements >= 2, (seen, data_statements)


def test_the_detector_flags_wildcards_and_allows_only_account_wide_actions():
    flagged = [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]},
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::*/*"]},
        {"Effect": "Allow", "Action": ["ecr:BatchGetImage"], "Resource": "arn:aws:ecr:us-west-2:1:repository/*"},
        {"Effect": "Allow", "Action": "fsx:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"effect": "Allow", "actions": ["s3:PutObject"], "resources": ["*"]},  # policy_document data source
    ]
    for st in flagged:
        assert wildcard_data_grants(st), st
    fine = [
        {"Effect": "Allow", "Action": ["fsx:DescribeFileSystems"], "Resource": "*"},
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "${aws_s3_bucket.data.arn}/*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::my-bucket/*"},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "autoscaling:SetDesiredCapacity", "Resource": "*"},
    ]
    for st in fine:
        assert not wildcard_data_grants(st), st


def test_policies_are_read_from_every_place_they_can_live():
    stack = {
        "resource": {
            "aws_iam_role_policy": {"a": {"policy": '{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", '
                                                    '"Resource": "${replace(x, \\"a\\", \\"b\\")}"}]}'}},
            "aws_iam_policy": {"b": {"policy": '{"Statement": {"Effect": "Allow", "Action": "s3:*", '
                                               '"Resource": "*"}}'}},
            "aws_iam_role": {"c": {"inline_policy": [{"policy": '{"Statement": [{"Effect": "Allow", '
                                                                '"Action": "ecr:*", "Resource": "*"}]}'}]}},
        },
        "data": {"aws_iam_policy_document": {"d": {"statement": [{"actions": ["fsx:*"], "resources": ["*"]}]}}},
    }
    found = {address: bool(wildcard_data_grants(st)) for address, st in iam_statements(stack)}
    assert found == {"aws_iam_role_policy.a": False, "aws_iam_policy.b": True,
                     "aws_iam_role.c.inline_policy[0]": True, "data.aws_iam_policy_document.d": True}
