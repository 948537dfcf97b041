"""S3 bucket with the defaults a data bucket needs: encryption, public access blocked, TLS-only
policy, versioning, owner-enforced ACLs, access logging and lifecycle hygiene."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import (
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from constructs import Construct

from .checkov import skip
from .iam import policy_document


@dataclass(frozen=True)
class SecureBucketProps:
    bucket_prefix: str
    # Where S3 server access logs go (bucket name); None for the log bucket itself.
    access_log_bucket: str | None = None
    access_log_prefix: str = ""
    noncurrent_version_days: int = 90
    prevent_destroy: bool = True
    # Log bucket only: accept access logs from this account's buckets alone (confused-deputy guard).
    account_id: str | None = None
    # The log bucket's policy: S3 rejects PutBucketLogging until it lets the logging service write.
    access_log_policy: S3BucketPolicy | None = None


class SecureBucket(Construct):
    """All resources of one bucket share its name (``aws_s3_bucket.data``, ``aws_s3_bucket_policy.data``...)."""

    bucket_name: str
    bucket_arn: str
    policy: S3BucketPolicy
    bucket: S3Bucket
    versioning: S3BucketVersioningA

    def __init__(self, scope: Construct, id: str, props: SecureBucketProps) -> None:
        super().__init__(scope, id)

        def part(kind: str) -> Construct:
            return Construct(self, kind)  # a scope per resource type, so every part can be named `id`

        # Protected (the default): Terraform refuses to plan its destroy, and S3 refuses to delete it
        # while it holds objects. Unprotected (throwaway environments): destroy empties it first.
        bucket = S3Bucket(self, id, bucket_prefix=props.bucket_prefix, force_destroy=not props.prevent_destroy,
                          lifecycle=TerraformResourceLifecycle(prevent_destroy=props.prevent_destroy))
        skip(bucket, "CKV_AWS_145",
             "SSE-S3 (AES256) by design: S3 server access logs can only be delivered to SSE-S3 buckets, and FSx "
             "data repository associations would need a key-policy grant to each file system's service-linked role")
        skip(bucket, "CKV_AWS_144",
             "No cross-region replication: the data is training input and checkpoints reproducible from their "
             "sources; versioning covers accidental deletes. Add replication per environment if required")
        skip(bucket, "CKV2_AWS_62",
             "No Terraform-managed event notifications: nothing here consumes bucket events, and an "
             "aws_s3_bucket_notification owns the whole notification configuration, which FSx auto-import also uses")
        S3BucketOwnershipControls(part("ownership"), id, bucket=bucket.id,
                                  rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"))
        S3BucketPublicAccessBlock(part("public_access"), id, bucket=bucket.id, block_public_acls=True,
                                  block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True)
        self.versioning = S3BucketVersioningA(
            part("versioning"), id, bucket=bucket.id,
            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"))
        # SSE-S3: FSx data repository associations and S3 server access logging work with it without
        # per-file-system KMS grants (see the security section of README.md).
        S3BucketServerSideEncryptionConfigurationA(
            part("encryption"), id, bucket=bucket.id,
            rule=[S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                    sse_algorithm="AES256"),
                bucket_key_enabled=True)])
        statements = [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [bucket.arn, f"{bucket.arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }]
        if props.access_log_bucket is None:
            # This is the log bucket: let the S3 logging service write into it.
            statements.append({
                "Sid": "S3ServerAccessLogs", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject", "Resource": f"{bucket.arn}/*",
                **({"Condition": {"StringEquals": {"aws:SourceAccount": props.account_id}}}
                   if props.account_id else {}),
            })
        policy = S3BucketPolicy(part("policy"), id, bucket=bucket.id, policy=policy_document(statements))
        if props.access_log_bucket is not None:
            S3BucketLoggingA(part("logging"), id, bucket=bucket.id, target_bucket=props.access_log_bucket,
                             target_prefix=props.access_log_prefix,
                             depends_on=[props.access_log_policy] if props.access_log_policy else None)
        S3BucketLifecycleConfiguration(part("lifecycle"), id, bucket=bucket.id, rule=[
            S3BucketLifecycleConfigurationRule(
                id="hygiene", status="Enabled", filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                abort_incomplete_multipart_upload=[
                    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(days_after_initiation=7)],
                noncurrent_version_expiration=[S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                    noncurrent_days=props.noncurrent_version_days)],
            )])
        self.bucket = bucket
        self.bucket_name = bucket.bucket
        self.policy = policy
        self.bucket_arn = bucket.arn
