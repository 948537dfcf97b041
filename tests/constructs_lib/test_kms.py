"""Customer-managed KMS keys: alone, from its props (``construct_synth``); and through the infra stack's JSON:
rotation, policies, and who uses which key."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey

from constructs_lib.kms import KmsKeys, KmsKeysProps
from tests.helpers import attrs, one, ref, resources, tf_json

ROOT_PRINCIPAL = ("arn:${data.aws_partition.current_partition.partition}"
                  ":iam::${data.aws_caller_identity.current.account_id}:root")


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
    logs_service = {"Service": f"logs.{shape.cfg.region}.amazonaws.com"}
    logs = [s for s in policy["Statement"] if s.get("Principal") == logs_service]
    assert logs, "encrypted log groups fail to create without the logs service in the key policy"
    actions = logs[0]["Action"]
    assert any(a.startswith("kms:GenerateDataKey") for a in actions)
    assert any(a.startswith("kms:Decrypt") for a in actions)


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


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
ALONE = KmsKeysProps(name="unit", eks_alias="alias/unit-eks", data_alias="alias/unit-data", region="eu-central-1",
                     account_id="111122223333", partition="aws-cn", deletion_window_days=7,
                     log_group_names=("/unit/a", "/aws/fsx/unit"))


@pytest.fixture(scope="module")
def alone(construct_synth):
    return construct_synth(lambda stack: KmsKeys(stack, "kms", ALONE), outputs=("eks_key_arn", "data_key_arn"))


@pytest.mark.parametrize("key, purpose", [("eks", "EKS secrets envelope encryption"),
                                          ("data", "logs, ECR and FSx at rest")])
def test_alone_each_key_rotates_with_the_props_deletion_window(alone, key, purpose):
    assert alone.has_resource(KmsKey, {
        "description": f"unit: {purpose}", "enable_key_rotation": True, "deletion_window_in_days": 7})
    assert alone.output(f"{key}_key_arn") == ref("aws_kms_key", key, "arn")


@pytest.mark.parametrize("key", ["eks", "data"])
def test_alone_aliases_from_the_props(alone, key):
    assert alone.has_resource(KmsAlias, {
        "name": f"alias/unit-{key}", "target_key_id": ref("aws_kms_key", key, "key_id")})


@pytest.mark.parametrize("key", ["eks", "data"])
def test_alone_the_account_of_the_props_administers_each_key(alone, key):
    (admin, *_) = json.loads(alone.one("aws_kms_key", key)["policy"])["Statement"]
    assert admin == {"Sid": "AccountAdministers", "Effect": "Allow",
                     "Principal": {"AWS": "arn:aws-cn:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}


def test_alone_only_the_data_key_lets_the_regions_logs_service_in_for_this_account(alone):
    eks = json.loads(alone.one("aws_kms_key", "eks")["policy"])["Statement"]
    assert [s["Sid"] for s in eks] == ["AccountAdministers"]
    (_, logs) = json.loads(alone.one("aws_kms_key", "data")["policy"])["Statement"]
    assert logs["Principal"] == {"Service": "logs.eu-central-1.amazonaws.com"}
    # The deployment's log groups only, not every log group of the account.
    assert logs["Condition"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": [
        "arn:aws-cn:logs:eu-central-1:111122223333:log-group:/unit/a",
        "arn:aws-cn:logs:eu-central-1:111122223333:log-group:/aws/fsx/unit"]}}
