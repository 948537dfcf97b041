"""AWS names derived from the deployment's ``name`` (3-32 characters, config.types.DeploymentName).

One function per name, each within the AWS API's own limit for that name (research aws_eks.md section 2), so
that two deployments in one account never collide and no name is rejected at apply. A name that would run
over its limit keeps a readable head and gets a short hash of the whole deployment name (still unique).
"""

from __future__ import annotations

import hashlib

# The data bucket's key prefix of the image build's source (the build context archive).
IMAGE_BUILD_S3_PREFIX = "image-build/"
IMAGE_BUILD_CONTEXT_KEY = f"{IMAGE_BUILD_S3_PREFIX}context.zip"

# provider 5.100 name_prefix limits: the provider appends a 26-character unique suffix.
IAM_ROLE_NAME_PREFIX_MAX = 64 - 26
ECR_PULL_THROUGH_PREFIX_MAX = 30  # CreatePullThroughCacheRule ecrRepositoryPrefix: 2-30


def fit(name: str, suffix: str, limit: int) -> str:
    """``<name><suffix>`` when it fits ``limit`` characters, else ``<head of name>-<hash4><suffix>``."""
    if len(name) + len(suffix) <= limit:
        return f"{name}{suffix}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:4]
    head = name[: limit - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}{suffix}"


def image_build_project(name: str) -> str:
    """The CodeBuild project that builds the Ray image (API: 2-150 of [A-Za-z0-9-_], letter or digit first)."""
    return f"{name}-ray-image"


def image_build_log_group(name: str) -> str:
    """CodeBuild's own log group name for the project, created by us (retention, KMS) before any build."""
    return f"/aws/codebuild/{image_build_project(name)}"


def image_build_role_prefix(name: str) -> str:
    """name_prefix of the CodeBuild service role (IAM role names: 64, prefixes 38)."""
    return fit(name, "-image-build-", IAM_ROLE_NAME_PREFIX_MAX)


def docker_hub_cache_prefix(name: str) -> str:
    """ECR pull-through cache rule prefix for Docker Hub. Rules are per account and region: one per deployment."""
    return fit(name, "-docker-hub", ECR_PULL_THROUGH_PREFIX_MAX)
