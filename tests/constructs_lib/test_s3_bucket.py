"""The data bucket and the access-log bucket, through the infra stack's JSON: encryption, public access
blocked, TLS-only policy, versioning, access logging."""

from __future__ import annotations

import pytest

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
