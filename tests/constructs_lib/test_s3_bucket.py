"""The secure bucket, alone from its props (``construct_synth``), and the data and access-log buckets through the
infra stack's JSON: encryption, public access blocked, TLS-only policy, versioning, access logging."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import S3BucketLifecycleConfiguration
from cdktf_cdktf_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import S3BucketOwnershipControls
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import S3BucketVersioningA

from constructs_lib.s3_bucket import SecureBucket, SecureBucketProps
from conventions import naming
from tests.helpers import attrs, outputs, ref, resources, tf_json

BUCKETS = ["data", "access_logs"]


def _for_bucket(stack: dict, rtype: str, bucket: str) -> dict:
    """The one ``rtype`` resource attached to ``aws_s3_bucket.<bucket>``."""
    bucket_id = ref("aws_s3_bucket", bucket, "id")
    found = [attrs(r) for r in resources(stack, rtype).values() if attrs(r).get("bucket") == bucket_id]
    assert len(found) == 1, f"expected one {rtype} for aws_s3_bucket.{bucket}, found {len(found)}"
    return found[0]


def test_both_buckets_exist(shape):
    assert set(BUCKETS) <= set(resources(shape.infra, "aws_s3_bucket"))
    data = attrs(resources(shape.infra, "aws_s3_bucket")["data"])
    assert data["bucket_prefix"] == naming.data_bucket_prefix(shape.cfg.name)
    logs = attrs(resources(shape.infra, "aws_s3_bucket")["access_logs"])
    assert logs["bucket_prefix"] == naming.access_logs_bucket_prefix(shape.cfg.name)


@pytest.mark.parametrize("bucket", BUCKETS)
def test_encryption_by_default(shape, bucket):
    sse = _for_bucket(shape.infra, "aws_s3_bucket_server_side_encryption_configuration", bucket)
    (rule,) = sse["rule"]
    by_default = rule["apply_server_side_encryption_by_default"]
    by_default = by_default[0] if isinstance(by_default, list) else by_default
    assert by_default["sse_algorithm"] in ("AES256", "aws:kms", "aws:kms:dsse")


@pytest.mark.parametrize("bucket", BUCKETS)
def test_public_access_blocked(shape, bucket):
    block = _for_bucket(shape.infra, "aws_s3_bucket_public_access_block", bucket)
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[flag] is True, flag


@pytest.mark.parametrize("bucket", BUCKETS)
def test_tls_only_policy(shape, bucket):
    policy = tf_json(_for_bucket(shape.infra, "aws_s3_bucket_policy", bucket)["policy"])
    arn = ref("aws_s3_bucket", bucket, "arn")
    denies = [s for s in policy["Statement"]
              if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    assert denies, "no Deny on aws:SecureTransport false"
    (deny,) = denies
    assert deny["Principal"] in ("*", {"AWS": "*"})
    assert deny["Action"] in ("s3:*", ["s3:*"])
    resources_ = deny["Resource"] if isinstance(deny["Resource"], list) else [deny["Resource"]]
    # Both the bucket and every object in it.
    assert set(resources_) == {arn, f"{arn}/*"}


@pytest.mark.parametrize("bucket", BUCKETS)
def test_versioning_enabled(shape, bucket):
    v = _for_bucket(shape.infra, "aws_s3_bucket_versioning", bucket)["versioning_configuration"]
    v = v[0] if isinstance(v, list) else v
    assert v["status"] == "Enabled"


def test_data_bucket_logs_to_access_log_bucket(shape):
    logging = _for_bucket(shape.infra, "aws_s3_bucket_logging", "data")
    assert logging["target_bucket"] in (ref("aws_s3_bucket", "access_logs", "bucket"),
                                        ref("aws_s3_bucket", "access_logs", "id"))


def test_protection_follows_config(shape):
    protect = shape.cfg.protection.prevent_destroy
    for bucket in BUCKETS:
        body = attrs(resources(shape.infra, "aws_s3_bucket")[bucket])
        assert body["lifecycle"]["prevent_destroy"] is protect, bucket
        # A protected bucket must never be emptied by destroy.
        assert body.get("force_destroy", False) is (not protect), bucket


def test_bucket_outputs(shape):
    out = outputs(shape.infra)
    assert out["data_bucket_name"]["value"] == ref("aws_s3_bucket", "data", "bucket")
    assert out["data_bucket_arn"]["value"] == ref("aws_s3_bucket", "data", "arn")
    assert out["access_logs_bucket_name"]["value"] == ref("aws_s3_bucket", "access_logs", "bucket")


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
@pytest.fixture(scope="module")
def pair(construct_synth):
    """A log bucket and a bucket logging into it, as the infra stack pairs them."""
    def build(stack):
        logs = SecureBucket(stack, "logs", SecureBucketProps(bucket_prefix="unit-logs-", account_id="111122223333",
                                                            prevent_destroy=False))
        return SecureBucket(stack, "data", SecureBucketProps(
            bucket_prefix="unit-data-", access_log_bucket=logs.bucket_name, access_log_prefix="data/",
            access_log_policy=logs.policy, noncurrent_version_days=30))
    return construct_synth(build, outputs=("bucket_name", "bucket_arn"))


@pytest.mark.parametrize("bucket", ["data", "logs"])
def test_alone_every_bucket_is_private_encrypted_versioned_and_owner_enforced(pair, bucket):
    bucket_id = ref("aws_s3_bucket", bucket, "id")
    assert pair.has_resource(S3BucketPublicAccessBlock, {
        "bucket": bucket_id, "block_public_acls": True, "block_public_policy": True, "ignore_public_acls": True,
        "restrict_public_buckets": True})
    assert pair.has_resource(S3BucketServerSideEncryptionConfigurationA, {"bucket": bucket_id, "rule": [
        {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}, "bucket_key_enabled": True}]})
    assert pair.has_resource(S3BucketVersioningA, {"bucket": bucket_id,
                                                   "versioning_configuration": {"status": "Enabled"}})
    assert pair.has_resource(S3BucketOwnershipControls, {"bucket": bucket_id,
                                                         "rule": {"object_ownership": "BucketOwnerEnforced"}})


@pytest.mark.parametrize("bucket", ["data", "logs"])
def test_alone_every_bucket_refuses_plain_http(pair, bucket):
    arn = ref("aws_s3_bucket", bucket, "arn")
    (deny, *_) = json.loads(pair.one("aws_s3_bucket_policy", bucket)["policy"])["Statement"]
    assert deny == {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_alone_the_log_bucket_takes_access_logs_from_its_account_only(pair):
    statements = json.loads(pair.one("aws_s3_bucket_policy", "logs")["policy"])["Statement"]
    assert statements[1] == {"Sid": "S3ServerAccessLogs", "Effect": "Allow",
                             "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
                             "Resource": f"{ref('aws_s3_bucket', 'logs', 'arn')}/*",
                             "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333"}}}
    assert len(json.loads(pair.one("aws_s3_bucket_policy", "data")["policy"])["Statement"]) == 1
    assert "logs" not in pair.resources("aws_s3_bucket_logging")


def test_alone_the_data_bucket_logs_into_the_log_bucket_once_its_policy_allows_it(pair):
    assert pair.has_resource(S3BucketLoggingA, {
        "bucket": ref("aws_s3_bucket", "data", "id"), "target_bucket": ref("aws_s3_bucket", "logs", "bucket"),
        "target_prefix": "data/", "depends_on": ["aws_s3_bucket_policy.logs"]})


def test_alone_protection_and_noncurrent_versions_from_the_props(pair):
    assert pair.has_resource(S3Bucket, {"bucket_prefix": "unit-data-", "force_destroy": False,
                                        "lifecycle": {"prevent_destroy": True}})
    assert pair.has_resource(S3Bucket, {"bucket_prefix": "unit-logs-", "force_destroy": True,
                                        "lifecycle": {"prevent_destroy": False}})
    assert pair.has_resource(S3BucketLifecycleConfiguration, {"bucket": ref("aws_s3_bucket", "data", "id"), "rule": [{
        "id": "hygiene", "status": "Enabled", "filter": [{"prefix": ""}],
        "abort_incomplete_multipart_upload": [{"days_after_initiation": 7}],
        "noncurrent_version_expiration": [{"noncurrent_days": 30}]}]})
    assert pair.output("bucket_name") == ref("aws_s3_bucket", "data", "bucket")
    assert pair.output("bucket_arn") == ref("aws_s3_bucket", "data", "arn")
