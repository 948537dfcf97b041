"""Every AWS name the stacks derive from the deployment ``name``, and the limits those names must fit.

One owner: stacks call these functions and hand the results to constructs as props. Each name fits its
limit for every ``name`` the config accepts (3-32 characters, ``NAME_RE`` below): where a name would
overflow, the deployment name is shortened, never the part that says what the thing is.

Collisions: IAM roles are global to the account, S3 buckets to the partition, so both get a generated
suffix (``name_prefix``/``bucket_prefix``): the same ``name`` in two regions, or two deployments, never
share one. The other names are regional and include ``name``: two deployments in one region differ in it,
and one region cannot hold two deployments of the same ``name`` (the EKS cluster is called ``name``).
tests/conventions/test_naming.py walks every name at the longest ``name``; tests/stacks/test_names.py
checks the synthesized stacks against ``LIMITS`` and against each other.
"""

from __future__ import annotations

import hashlib
import re

# Longest name each attribute takes: provider 5.100.0's own validation, or the AWS API where that is
# stricter (research notes /work/research/aws_eks.md section 2: `terraform validate` at L and L+1, and the
# API models). A *_prefix limit is the name limit less the 26-character suffix the provider appends.
LIMITS: dict[str, int] = {
    "aws_s3_bucket.bucket": 63,
    "aws_s3_bucket.bucket_prefix": 37,
    "aws_iam_role.name": 64,
    "aws_iam_role.name_prefix": 38,
    "aws_iam_policy.name": 128,
    "aws_iam_policy.name_prefix": 102,
    "aws_iam_role_policy.name": 128,
    "aws_iam_role_policy.name_prefix": 102,
    "aws_iam_instance_profile.name": 128,
    "aws_iam_instance_profile.name_prefix": 102,
    "aws_ecr_repository.name": 256,  # the provider does not check; CreateRepository: 2-256
    "aws_ecr_pull_through_cache_rule.ecr_repository_prefix": 30,
    "aws_launch_template.name": 125,
    "aws_launch_template.name_prefix": 99,
    "aws_eks_cluster.name": 100,
    "aws_eks_node_group.node_group_name": 63,
    "aws_eks_node_group.node_group_name_prefix": 37,
    "aws_security_group.name": 255,
    "aws_security_group.name_prefix": 229,
    "aws_cloudwatch_log_group.name": 512,
    "aws_cloudwatch_log_group.name_prefix": 483,
    "aws_kms_alias.name": 256,  # the provider does not check; CreateAlias: 1-256
    "aws_sfn_state_machine.name": 80,
    "aws_sfn_state_machine.name_prefix": 54,
    "aws_codebuild_project.name": 150,  # the provider allows 255; CreateProject: 2-150
    "aws_lambda_function.function_name": 64,  # a bare name (140 counts a whole ARN)
    "aws_secretsmanager_secret.name": 512,
    "aws_secretsmanager_secret.name_prefix": 486,
    "aws_sqs_queue.name": 80,  # CreateQueue: 1-80 of [A-Za-z0-9_-]
    "aws_cloudwatch_event_rule.name": 64,  # PutRule: 1-64 of [.-_A-Za-z0-9]
}

# The deployment name's rule (config's `name` validates with it): 3-32 characters that every name below
# can carry. These functions refuse anything else -- a Terraform token in particular, whose text must never
# be cut.
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]\Z", re.ASCII)
MAX_NAME_LENGTH = 32
# The tag on every resource of a deployment (value: the deployment name), through the provider's default_tags
# and the launch templates. scripts/preflight.py tells a deployment's own instances and addresses by it.
DEPLOYMENT_TAG = "ray-eks/deployment"
# S3 reserves these bucket name prefixes; config rejects deployment names that start with them.
S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")


def _check(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValueError(f"not a deployment name: {name!r}")
    return name


def _fit(name: str, suffix: str, limit: int) -> str:
    """``name + suffix``, the name shortened (at most to one character) when the whole would exceed ``limit``."""
    _check(name)
    room = limit - len(suffix)
    if room < 1:
        raise ValueError(f"{suffix!r} leaves no room for the deployment name within {limit} characters")
    return (name if len(name) <= room else name[:room].rstrip("-")) + suffix


# ---------------------------------------------------------------------------------------------- global
def iam_role_name_prefix(name: str, purpose: str) -> str:
    """``<name>-<purpose>-``: IAM appends a unique suffix, so no two deployments (or regions) share a role."""
    return _fit(name, f"-{purpose}-", LIMITS["aws_iam_role.name_prefix"])


def bucket_prefix(name: str, purpose: str) -> str:
    """``<name>-<purpose>-`` for ``bucket_prefix``: S3 names are global, the suffix makes them unique."""
    return _fit(name, f"-{purpose}-", LIMITS["aws_s3_bucket.bucket_prefix"])


def data_bucket_prefix(name: str) -> str:
    return bucket_prefix(name, "data")


def access_logs_bucket_prefix(name: str) -> str:
    return bucket_prefix(name, "access-logs")


# Role purposes, one per role the stacks create (the infra stack's, then the ray stack's).
CLUSTER_ROLE = "cluster"
VPC_FLOW_LOGS_ROLE = "vpc-flow-logs"
FSX_CSI_DRIVER_ROLE = "fsx-csi-driver"
CLUSTER_AUTOSCALER_ROLE = "cluster-autoscaler"
RAY_WORKLOAD_ROLE = "ray-workload"
CONTAINER_INSIGHTS_ROLE = "container-insights"
ORCHESTRATOR_ROLE = "ray-orchestrator"
ORCHESTRATOR_FUNCTION_ROLE = "ray-orch-fn"
IMAGE_BUILD_ROLE = "image-build"
VPC_CNI_ROLE = "vpc-cni"
API_TUNNEL_ROLE = "api-tunnel"
KARPENTER_CONTROLLER_ROLE = "karpenter"
KARPENTER_NODE_ROLE = "karpenter-node"


def node_role_purpose(group: str) -> str:
    return f"node-{group}"


# ---------------------------------------------------------------------------------------------- regional
def cluster_name(name: str) -> str:
    """The EKS cluster: the deployment name itself (what operators type in update-kubeconfig)."""
    return _check(name)


def cluster_log_group(name: str) -> str:
    # EKS writes control-plane logs to exactly this group; created first, it gets our retention and key.
    return f"/aws/eks/{cluster_name(name)}/cluster"


def fsx_log_group(name: str) -> str:
    # FSx for Lustre logs only to groups whose name starts with /aws/fsx/.
    return f"/aws/fsx/{_check(name)}"


def vpc_flow_logs_log_group(name: str) -> str:
    return f"/aws/vpc/{_check(name)}/flow-logs"


def state_machine_name(name: str) -> str:
    return f"{_check(name)}-ray-orchestrator"


def state_machine_log_group(name: str) -> str:
    # /aws/vendedlogs/: CloudWatch Logs' resource policy for vended delivery covers it without growing.
    return f"/aws/vendedlogs/states/{state_machine_name(name)}"


def orchestrator_function_name(name: str) -> str:
    """The orchestrator's Lambda function (regional, per deployment): named as the pipeline it serves."""
    return state_machine_name(name)


def lambda_log_group(function_name: str) -> str:
    # Lambda's default log group name: its console and tools look there.
    return f"/aws/lambda/{function_name}"


def kms_alias(name: str, purpose: str) -> str:
    return f"alias/{_check(name)}-{purpose}"


def security_group_name_prefix(name: str, purpose: str) -> str:
    return _fit(name, f"-{purpose}-", LIMITS["aws_security_group.name_prefix"])


def launch_template_name_prefix(name: str, group: str) -> str:
    return _fit(name, f"-{group}-", LIMITS["aws_launch_template.name_prefix"])


def node_group_name_prefix(group: str) -> str:
    """Per cluster: the group's name (a new suffix lets instance type changes roll over)."""
    return f"{group}-"


def instance_profile_name_prefix(name: str, purpose: str) -> str:
    """``<name>-<purpose>-``: instance profiles are global to the account, like roles."""
    return _fit(name, f"-{purpose}-", LIMITS["aws_iam_instance_profile.name_prefix"])


def karpenter_interruption_queue(name: str) -> str:
    """The SQS queue Karpenter reads interruption events from (regional; the controller's settings name it)."""
    return _fit_unique(name, "-karpenter", LIMITS["aws_sqs_queue.name"])


def karpenter_event_rule(name: str, event: str) -> str:
    """An EventBridge rule sending one kind of EC2/Health event to the interruption queue (regional)."""
    return _fit_unique(name, f"-karpenter-{event}", LIMITS["aws_cloudwatch_event_rule.name"])


def ecr_repository_name(name: str) -> str:
    """The custom Ray image's repository: ``<name>/ray-custom``, one per deployment (ECR names are regional)."""
    return f"{_check(name)}/ray-custom"



# ---------------------------------------------------------------------------------------------- image build
# The data bucket's key prefix of the image build's source (the build context archive).
IMAGE_BUILD_S3_PREFIX = "image-build/"
IMAGE_BUILD_CONTEXT_KEY = f"{IMAGE_BUILD_S3_PREFIX}context.zip"


def _fit_unique(name: str, suffix: str, limit: int) -> str:
    """For exact names (no provider suffix): ``<name><suffix>`` when it fits, else a readable head of the name and a
    short hash of all of it, so two long names that share a head still differ."""
    _check(name)
    if len(name) + len(suffix) <= limit:
        return f"{name}{suffix}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:4]
    return f"{name[: limit - len(suffix) - len(digest) - 1].rstrip('-')}-{digest}{suffix}"


def image_build_project(name: str) -> str:
    """The CodeBuild project that builds the Ray image (API: 2-150 of [A-Za-z0-9-_], letter or digit first)."""
    return _fit_unique(name, "-ray-image", LIMITS["aws_codebuild_project.name"])


def image_build_log_group(name: str) -> str:
    """CodeBuild's own log group name for the project, created by us (retention, KMS) before any build."""
    return f"/aws/codebuild/{image_build_project(name)}"


def docker_hub_cache_prefix(name: str) -> str:
    """ECR pull-through cache rule prefix for Docker Hub. Rules are per account and region: one per deployment."""
    return _fit_unique(name, "-docker-hub", LIMITS["aws_ecr_pull_through_cache_rule.ecr_repository_prefix"])
