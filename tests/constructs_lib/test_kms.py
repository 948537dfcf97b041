"""Customer-managed KMS keys, through the infra stack's JSON: rotation, policies, and who uses which key."""

from __future__ import annotations

import json

import pytest

from tests.helpers import attrs, one, ref, resources, tf_json

ROOT_PRINCIPAL = "arn:${data.aws_partition.current_partition.partition}:iam::${data.aws_caller_identity.current.account_id}:root"


@pytest.mark.parametrize("key", ["eks", "data"])
def test_key_rotation_and_deletion_window(shape, key):
    k = attrs(one(shape.infra, "aws_kms_key", key))
    assert k["enable_key_rotation"] is True
    assert 7 <= k["deletion_window_in_days"] <= 30


@pytest.mark.parametrize("key", ["eks", "data"])
def test_key_policy_keeps_account_in_control(shape, key):
    policy = tf_json(attrs(one(shape.infra, "aws_kms_key", key))["policy"])
    admin = [s for s in policy["Statement"] if s["Effect"] == "Allow" and s["Principal"] == {"AWS": ROOT_PRINCIPAL}]
    # Without the account root statement, IAM policies cannot grant use of the key and it can be orphaned.
    assert admin and admin[0]["Action"] in ("kms:*", ["kms:*"])


def test_data_key_lets_cloudwatch_logs_encrypt(shape):
    policy = tf_json(attrs(one(shape.infra, "aws_kms_key", "data"))["policy"])
    logs = [s for s in policy["Statement"] if s.get("Principal") == {"Service": f"logs.{shape.cfg.region}.amazonaws.com"}]
    assert logs, "encrypted log groups fail to create without the logs service in the key policy"
    actions = logs[0]["Action"]
    assert any(a.startswith("kms:GenerateDataKey") for a in actions) and any(a.startswith("kms:Decrypt") for a in actions)


@pytest.mark.parametrize("key", ["eks", "data"])
def test_alias_per_key(shape, key):
    aliases = [attrs(a) for a in resources(shape.infra, "aws_kms_alias").values()
               if attrs(a)["target_key_id"] == ref("aws_kms_key", key, "key_id")]
    assert len(aliases) == 1 and aliases[0]["name"].startswith(f"alias/{shape.cfg.name}-")


def test_log_groups_encrypted_with_data_key(shape):
    groups = resources(shape.infra, "aws_cloudwatch_log_group")
    assert groups
    for name, g in groups.items():
        assert attrs(g)["kms_key_id"] == ref("aws_kms_key", "data", "arn"), name


def test_secrets_key_used_only_for_eks_secrets(shape):
    uses = [f"{t}.{n}" for t, byname in shape.infra["resource"].items() for n, body in byname.items()
            if ref("aws_kms_key", "eks", "arn") in json.dumps(attrs(body))]
    assert uses == ["aws_eks_cluster.ray"]
