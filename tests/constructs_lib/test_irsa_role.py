"""An IAM role for one Kubernetes service account (IRSA), alone from its props (``construct_synth``): trusted by
that service account of that cluster's OIDC provider and nothing else, with its one inline policy."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy

from constructs_lib.iam import policy_document, statement
from constructs_lib.irsa_role import IrsaRole, IrsaRoleProps
from tests.helpers import ref

POLICY = policy_document([statement(["s3:GetObject"], ["arn:aws:s3:::unit-data/*"], sid="Read")])
ALONE = IrsaRoleProps(role_name_prefix="unit-reader-",
                      oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/oidc.x/id/A",
                      oidc_issuer_host="oidc.x/id/A", namespace="team-a", service_account="reader",
                      policy_name="read-data", policy_json=POLICY)


@pytest.fixture(scope="module")
def alone(construct_synth):
    return construct_synth(lambda stack: IrsaRole(stack, "reader", ALONE), outputs=("role_arn",))


def test_trusts_one_service_account_through_the_clusters_oidc_provider(alone):
    role = alone.one("aws_iam_role", "reader")
    assert role["name_prefix"] == "unit-reader-" and "name" not in role
    assert json.loads(role["assume_role_policy"]) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": ALONE.oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"oidc.x/id/A:sub": "system:serviceaccount:team-a:reader",
                                       "oidc.x/id/A:aud": "sts.amazonaws.com"}}}]}
    assert alone.output("role_arn") == ref("aws_iam_role", "reader", "arn")


def test_its_one_inline_policy_is_the_props_policy(alone):
    assert alone.has_resource(IamRolePolicy, {"role": ref("aws_iam_role", "reader", "id"), "name": "read-data",
                                              "policy": POLICY})
    assert list(alone.resources("aws_iam_role_policy")) == ["reader"]
    assert not alone.resources("aws_iam_role_policy_attachment")
