"""What every stack shares: the AWS provider (region, tags, optional emulator endpoint), the state backend (local or
S3 with native locking; one state per deployment: its name and region are in every path and key), the Terraform
version it needs, and the deployment it belongs to (an output, so that a state says whose it is). The remote-state
reader uses the same settings."""

from __future__ import annotations

from cdktf import (
    DataTerraformRemoteStateLocal,
    DataTerraformRemoteStateS3,
    LocalBackend,
    S3Backend,
    TerraformOutput,
    TerraformStack,
)
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags, AwsProviderEndpoints
from constructs import Construct

from config import AppConfig

from .state import DEPLOYMENT_OUTPUT, REQUIRED_TERRAFORM, deployment_identity, local_state_path, state_key

# The services our stacks call; an emulator endpoint is set for each of them.
EMULATED_SERVICES = ("autoscaling", "codebuild", "ec2", "ecr", "eks", "events", "fsx", "iam", "kms", "logs", "s3",
                     "sfn", "sqs", "ssm", "sts")
def _s3_emulator_settings(cfg: AppConfig) -> dict:
    url = cfg.endpoints.url
    if not url:
        return {}
    return {
        "endpoints": {"s3": url, "sts": url, "iam": url},
        "use_path_style": True,
        "skip_credentials_validation": True,
        "skip_requesting_account_id": True,
        "skip_metadata_api_check": True,
        "skip_region_validation": True,
        "access_key": cfg.endpoints.access_key,
        "secret_key": cfg.endpoints.secret_key,
    }


def configure_backend(stack: TerraformStack, cfg: AppConfig, stack_name: str) -> None:
    """The stack's state (its own path or key, this deployment's) and the Terraform version it needs."""
    stack.add_override("terraform.required_version", REQUIRED_TERRAFORM)
    b = cfg.backend
    if b.type == "local":
        LocalBackend(stack, path=local_state_path(cfg, stack_name))
        return
    assert b.bucket, "BackendConfig requires a bucket for s3"
    S3Backend(stack, bucket=b.bucket, key=state_key(cfg, stack_name), region=b.region or cfg.region,
              encrypt=True, kms_key_id=b.kms_key_id)
    # Native S3 locking (Terraform >= 1.10); cdktf 0.21's S3Backend has no field for it.
    stack.add_override("terraform.backend.s3.use_lockfile", True)
    for k, v in _s3_emulator_settings(cfg).items():
        stack.add_override(f"terraform.backend.s3.{k}", v)


def deployment_output(stack: TerraformStack, cfg: AppConfig) -> TerraformOutput:
    """The stack's state names its deployment: a plan against another deployment's state is refused before it runs
    (scripts/tf.py)."""
    return TerraformOutput(stack, DEPLOYMENT_OUTPUT, value=deployment_identity(cfg),
                           description="The deployment this state belongs to (name and region)")


def remote_state(scope: Construct, id: str, cfg: AppConfig, stack_name: str):
    """Read another stack's outputs with exactly the settings its backend writes with."""
    b = cfg.backend
    if b.type == "local":
        return DataTerraformRemoteStateLocal(scope, id, path=local_state_path(cfg, stack_name))
    assert b.bucket, "BackendConfig requires a bucket for s3"
    rs = DataTerraformRemoteStateS3(scope, id, bucket=b.bucket, key=state_key(cfg, stack_name),
                                    region=b.region or cfg.region, encrypt=True, kms_key_id=b.kms_key_id)
    for k, v in _s3_emulator_settings(cfg).items():
        rs.add_override(f"config.{k}", v)
    rs.add_override("config.use_lockfile", True)
    return rs


def ray_pod_image(cfg: AppConfig, infra) -> str:
    """The Ray pods' image: the infra stack's build output with ray.image.source build (read through remote state,
    so it is the image a successful build pushed), the config's stock or custom image otherwise."""
    return cfg.ray_image(infra.get_string("ray_image") if cfg.ray.image.source == "build" else None)


def emulator_environment(cfg: AppConfig) -> dict[str, str]:
    """Environment for AWS CLI calls the deploy makes itself (the image build script): the emulator's endpoint
    and its dummy keys when ``endpoints.url`` is set, nothing otherwise (the caller's own credentials apply)."""
    if not cfg.endpoints.url:
        return {}
    return {"AWS_ENDPOINT_URL": cfg.endpoints.url, "AWS_ACCESS_KEY_ID": cfg.endpoints.access_key,
            "AWS_SECRET_ACCESS_KEY": cfg.endpoints.secret_key}


def aws_provider(stack: TerraformStack, cfg: AppConfig) -> AwsProvider:
    tags = cfg.deployment_tags
    kwargs = {}
    if cfg.endpoints.url:
        url = cfg.endpoints.url
        kwargs = dict(
            endpoints=[AwsProviderEndpoints(**{s: url for s in EMULATED_SERVICES})],
            access_key=cfg.endpoints.access_key, secret_key=cfg.endpoints.secret_key,
            # The account id is still asked of the emulated STS: the provider compares it with the owner
            # of referenced security groups, and an empty one reads back as "<account>/sg-..." drift.
            skip_credentials_validation=True, skip_metadata_api_check="true", skip_requesting_account_id=False,
            skip_region_validation=True, s3_use_path_style=True,
        )
    return AwsProvider(stack, "aws", region=cfg.region, default_tags=[AwsProviderDefaultTags(tags=tags)], **kwargs)
