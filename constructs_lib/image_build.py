"""The Ray image, built in AWS CodeBuild by the deploy: training/Dockerfile with the job's requirements and code.

The build context (Dockerfile, requirements.txt, training/*.py) goes to the data bucket as a deterministic zip
(``image-build/context.zip``, an ``aws_s3_object`` from a cdktf asset); a privileged CodeBuild project (Docker in
Docker) builds it and pushes ``<repository>:<ray version>-<content hash>`` to the ECR repository. The tag is
immutable (so is the repository), so the hash covers everything that makes the image: the context, the base
image and the buildspec. A ``terraform_data`` keyed on that image runs scripts/build_image.sh (a ``local-exec``
shipped as an asset: plain ``terraform apply`` in the synthesized stack directory runs it too), which starts the
build and waits for it; ``image_uri`` is that resource's output, so it exists only after a build succeeded.

The service role may push to this repository only, read the build source under the bucket prefix only, write its
own log group only, and with a pull-through cache import and pull under the cache prefix only.

Addresses: ``aws_codebuild_project.ray_image``, ``aws_iam_role.image_build``, ``aws_iam_role_policy.image_build``,
``aws_cloudwatch_log_group.image_build``, ``aws_s3_object.image_build_context``, ``terraform_data.ray_image_build``,
optionally ``aws_ecr_pull_through_cache_rule.docker_hub``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdktf import AssetType, DataResource, Fn, LocalExecProvisioner, TerraformAsset, TerraformResource, Token
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.codebuild_project import (
    CodebuildProject,
    CodebuildProjectArtifacts,
    CodebuildProjectCache,
    CodebuildProjectEnvironment,
    CodebuildProjectEnvironmentEnvironmentVariable,
    CodebuildProjectLogsConfig,
    CodebuildProjectLogsConfigCloudwatchLogs,
    CodebuildProjectLogsConfigS3Logs,
    CodebuildProjectSource,
)
from cdktf_cdktf_provider_aws.ecr_pull_through_cache_rule import EcrPullThroughCacheRule
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.s3_object import S3Object
from constructs import Construct

from .archives import deterministic_zip
from .checkov import skip
from .iam import policy_document, statement

DOCKER_HUB_REGISTRY = "registry-1.docker.io"
# Actions that push one image to one repository (and let the build check whether the tag exists already).
ECR_PUSH_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
                    "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage", "ecr:DescribeImages"]
# Pulling through a pull-through cache rule: the first pull imports the upstream image into a repository that
# ECR creates under the rule's prefix (docs: pull-through-cache-iam.html).
ECR_PULL_THROUGH_ACTIONS = ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository", "ecr:BatchGetImage",
                            "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]

# Static text: the project's environment variables say what to build; no Terraform interpolation inside.
# An existing tag is not rebuilt (a re-run, or content that went back to an earlier version): tags are immutable.
# The base image is pulled first, with retries: Docker Hub answers anonymous pulls beyond its limit (10 per hour per
# address, and CodeBuild's addresses are shared) with "toomanyrequests" for a while. The waits double from
# PULL_BACKOFF_SECONDS (default 60: 1, 2, 4, 8 minutes, 15 in all); the build then uses the pulled image as it is.
# (No ${...} in it: Terraform would read that as an interpolation.)
BUILDSPEC = """\
version: 0.2
env:
  shell: bash
phases:
  pre_build:
    commands:
      - REGISTRY=$(echo "$REPOSITORY_URL" | cut -d/ -f1)
      - aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$REGISTRY"
  build:
    commands:
      - |
        if aws ecr describe-images --repository-name "$REPOSITORY_NAME" --image-ids "imageTag=$IMAGE_TAG" \
            > /dev/null 2>&1; then
          echo "$REPOSITORY_URL:$IMAGE_TAG exists already (tags are immutable): nothing to build"
        else
          wait_s="$PULL_BACKOFF_SECONDS"; [ -n "$wait_s" ] || wait_s=60
          for attempt in 1 2 3 4 5; do
            docker pull "$BASE_IMAGE" && break
            if [ "$attempt" = 5 ]; then
              echo "error: could not pull $BASE_IMAGE after $attempt attempts (Docker Hub limits anonymous pulls:" \
                "set ray.image.docker_hub_secret_arn)" >&2
              exit 1
            fi
            echo "pull of $BASE_IMAGE failed (attempt $attempt of 5): retrying in $wait_s seconds"
            sleep "$wait_s"
            wait_s=$((wait_s * 2))
          done
          docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$REPOSITORY_URL:$IMAGE_TAG" .
          docker push "$REPOSITORY_URL:$IMAGE_TAG"
        fi
"""

def context_archive(files: Mapping[str, bytes]) -> bytes:
    """The build context as a zip whose bytes depend on the file names and contents only."""
    return deterministic_zip(files)


def content_hash(files: Mapping[str, bytes], base_image: str, buildspec: str = BUILDSPEC) -> str:
    """sha256 of what makes the image: every context file (name and content), the base image, the buildspec."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(f"file {name} {len(data)}\n".encode())
        h.update(data)
    h.update(f"base {base_image}\nbuildspec {len(buildspec)}\n{buildspec}".encode())
    return h.hexdigest()


def image_tag(ray_version: str, digest: str) -> str:
    """``<ray version>-<12 hex>``: readable, and a new tag whenever the content changes."""
    return f"{ray_version}-{digest[:12]}"


@dataclass(frozen=True)
class PullThroughCacheProps:
    prefix: str  # the rule's ECR repository prefix (2-30 characters)
    secret_arn: str  # Secrets Manager secret ecr-pullthroughcache/... with the Docker Hub credentials


@dataclass(frozen=True)
class ImageBuildProps:
    project_name: str
    role_name_prefix: str
    log_group_name: str
    region: str
    account_id: str
    partition: str
    repository_url: str
    repository_arn: str
    repository_name: str
    bucket_name: str
    bucket_arn: str
    # What must exist before the context is uploaded: the bucket's versioning (the build starts from the upload's
    # version id) and its policy.
    bucket_ready: Sequence[TerraformResource]
    source_key: str  # S3 key of the context zip in the bucket
    source_prefix: str  # the key's prefix: the role reads under it only
    context_path: str  # the context zip on disk (context_archive's bytes), copied into the stack as an asset
    content_hash: str  # content_hash of that context with base_image
    image_tag: str
    base_image: str  # what the Dockerfile's FROM pulls, e.g. rayproject/ray:2.58.0-py311-cu130 (Docker Hub)
    script_path: str  # scripts/build_image.sh, copied into the stack as an asset
    compute_type: str
    timeout_minutes: int
    codebuild_image: str
    logs_kms_key_arn: str
    log_retention_days: int
    pull_through_cache: PullThroughCacheProps | None
    # Extra environment of the build script (an emulator's endpoint and dummy keys); empty for AWS.
    script_environment: Mapping[str, str]
    queued_timeout_minutes: int = 60  # then CodeBuild gives up on a build that never started


class RayImageBuild(Construct):
    """Builds and pushes the Ray image during the deploy. ``image_uri``: ``<repository url>:<tag>``, known once the
    build succeeded."""

    image_uri: str
    project: CodebuildProject
    role: IamRole
    build: DataResource
    base_image_ref: str  # BASE_IMAGE as the build passes it (through the cache when there is one)

    def __init__(self, scope: Construct, id: str, props: ImageBuildProps) -> None:
        super().__init__(scope, id)
        arn = f"arn:{props.partition}"
        project_arn = f"{arn}:codebuild:{props.region}:{props.account_id}:project/{props.project_name}"
        log_group_arn = f"{arn}:logs:{props.region}:{props.account_id}:log-group:{props.log_group_name}"
        registry = Fn.element(Fn.split("/", props.repository_url), 0)

        cache = props.pull_through_cache
        statements = [
            statement(["ecr:GetAuthorizationToken"], ["*"], sid="EcrLogin"),  # no resource-level permissions
            statement(ECR_PUSH_ACTIONS, [props.repository_arn], sid="PushTheRayImage"),
            statement(["s3:GetObject", "s3:GetObjectVersion"], [f"{props.bucket_arn}/{props.source_prefix}*"],
                      sid="ReadBuildSource"),
            statement(["logs:CreateLogStream", "logs:PutLogEvents"], [log_group_arn, f"{log_group_arn}:*"],
                      sid="WriteBuildLogs"),
        ]
        if cache is not None:
            rule = EcrPullThroughCacheRule(self, "docker_hub", ecr_repository_prefix=cache.prefix,
                                           upstream_registry_url=DOCKER_HUB_REGISTRY, credential_arn=cache.secret_arn)
            cached = f"{arn}:ecr:{props.region}:{props.account_id}:repository/{cache.prefix}/*"
            statements.append(statement(ECR_PULL_THROUGH_ACTIONS, [cached], sid="PullBaseImageThroughCache"))
            # rayproject/ray is not a Docker "official" image: no library/ in the cached path.
            self.base_image_ref = Fn.format("%s/%s/%s", [registry, rule.ecr_repository_prefix, props.base_image])
        else:
            self.base_image_ref = props.base_image

        logs = CloudwatchLogGroup(Construct(self, "logs"), "image_build", name=props.log_group_name,
                                  retention_in_days=props.log_retention_days, kms_key_id=props.logs_kms_key_arn)
        self.role = IamRole(Construct(self, "role"), "image_build", name_prefix=props.role_name_prefix,
                            description=f"CodeBuild project {props.project_name}: builds and pushes the Ray image",
                            assume_role_policy=policy_document([{
                                "Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                                # Only this project, in this account, may use the role (confused deputy).
                                "Condition": {"StringEquals": {"aws:SourceAccount": props.account_id},
                                              "ArnLike": {"aws:SourceArn": project_arn}},
                            }]))
        policy = IamRolePolicy(Construct(self, "policy"), "image_build", role=self.role.id,
                               name="build-and-push-ray-image", policy=policy_document(statements))

        context = TerraformAsset(Construct(self, "asset"), "image_build_context", path=props.context_path,
                                 type=AssetType.FILE, asset_hash=props.content_hash[:32])
        source = S3Object(Construct(self, "source"), "image_build_context", bucket=props.bucket_name,
                          key=props.source_key, source=context.path, source_hash=props.content_hash,
                          content_type="application/zip", depends_on=list(props.bucket_ready))

        self.project = CodebuildProject(
            self, "ray_image", name=props.project_name, service_role=self.role.arn,
            description="Builds training/Dockerfile (Ray + training/requirements.txt + the job code) and pushes it",
            build_timeout=props.timeout_minutes, queued_timeout=props.queued_timeout_minutes,
            artifacts=CodebuildProjectArtifacts(type="NO_ARTIFACTS"),
            source=CodebuildProjectSource(type="S3", location=f"{props.bucket_name}/{props.source_key}",
                                          buildspec=BUILDSPEC),
            environment=CodebuildProjectEnvironment(
                type="LINUX_CONTAINER", compute_type=props.compute_type, image=props.codebuild_image,
                image_pull_credentials_type="CODEBUILD",
                privileged_mode=True,  # docker build needs the Docker daemon (Docker in Docker)
                environment_variable=[CodebuildProjectEnvironmentEnvironmentVariable(name=k, value=v, type="PLAINTEXT")
                                      for k, v in (("REPOSITORY_URL", props.repository_url),
                                                   ("REPOSITORY_NAME", props.repository_name),
                                                   ("IMAGE_TAG", props.image_tag),
                                                   ("BASE_IMAGE", self.base_image_ref))]),
            cache=CodebuildProjectCache(type="LOCAL", modes=["LOCAL_DOCKER_LAYER_CACHE"]),
            logs_config=CodebuildProjectLogsConfig(
                cloudwatch_logs=CodebuildProjectLogsConfigCloudwatchLogs(status="ENABLED", group_name=logs.name),
                s3_logs=CodebuildProjectLogsConfigS3Logs(status="DISABLED")),
            # The role must be able to write its logs and read the source before the first build starts.
            depends_on=[policy])
        skip(self.project, "CKV_AWS_316",
             "Privileged mode is what runs the Docker daemon that builds the image (AWS's Docker sample sets it); "
             "the project runs only our buildspec on our build context, with a role limited to this repository")

        image_uri = f"{props.repository_url}:{props.image_tag}"
        script = TerraformAsset(self, "image_build_script", path=props.script_path, type=AssetType.FILE)
        self.build = DataResource(
            self, "ray_image_build", input={"image": image_uri}, triggers_replace={"image": image_uri},
            provisioners=[LocalExecProvisioner(
                type="local-exec", interpreter=["bash"],
                # Relative to the stack directory, where terraform (and cdktf deploy) run.
                command=f"${{path.module}}/{script.path}",
                environment={"PROJECT_NAME": self.project.name, "SOURCE_VERSION": source.version_id,
                             "IMAGE": image_uri, "AWS_REGION": props.region, "AWS_DEFAULT_REGION": props.region,
                             "MAX_WAIT_MINUTES": str(props.timeout_minutes + props.queued_timeout_minutes + 10),
                             **props.script_environment})])
        self.image_uri = Token.as_string(self.build.interpolation_for_attribute("output.image"))
