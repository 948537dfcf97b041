"""conventions/naming.py: every AWS name derived from the deployment name fits its limit for every name the
config accepts, says what it names, and never cuts a Terraform token."""

from __future__ import annotations

import inspect
import re

import pytest

from config import ConfigError, parse_config
from config.types import ECR_NAME_RE
from conventions import naming

LONGEST = "a" * 15 + "-" + "b" * 16  # 32 characters: the longest name the schema accepts
SHORTEST = "abc"
LONGEST_GROUP = "g" * 20  # NodeGroupName allows 2-20
ROLE_PURPOSES = [v for k, v in vars(naming).items() if k.endswith("_ROLE")] + [naming.node_role_purpose(LONGEST_GROUP)]

# Every derived name: (what, limit key, function of the deployment name). Purposes as the stacks pass them.
DERIVED = [
    *[(f"role {p}", "aws_iam_role.name_prefix", lambda n, p=p: naming.iam_role_name_prefix(n, p))
      for p in ROLE_PURPOSES],
    ("data bucket", "aws_s3_bucket.bucket_prefix", naming.data_bucket_prefix),
    ("access-log bucket", "aws_s3_bucket.bucket_prefix", naming.access_logs_bucket_prefix),
    ("cluster", "aws_eks_cluster.name", naming.cluster_name),
    ("cluster log group", "aws_cloudwatch_log_group.name", naming.cluster_log_group),
    ("fsx log group", "aws_cloudwatch_log_group.name", naming.fsx_log_group),
    ("flow-log group", "aws_cloudwatch_log_group.name", naming.vpc_flow_logs_log_group),
    ("state machine", "aws_sfn_state_machine.name", naming.state_machine_name),
    ("state machine log group", "aws_cloudwatch_log_group.name", naming.state_machine_log_group),
    *[(f"kms alias {p}", "aws_kms_alias.name", lambda n, p=p: naming.kms_alias(n, p))
      for p in ("eks", "data", "ray-orchestrator")],
    ("fsx security group", "aws_security_group.name_prefix", lambda n: naming.security_group_name_prefix(n, "fsx")),
    ("launch template", "aws_launch_template.name_prefix",
     lambda n: naming.launch_template_name_prefix(n, LONGEST_GROUP)),
    ("node group", "aws_eks_node_group.node_group_name_prefix", lambda n: naming.node_group_name_prefix(LONGEST_GROUP)),
    ("ecr repository", "aws_ecr_repository.name", naming.ecr_repository_name),
    ("orchestrator function", "aws_lambda_function.function_name", naming.orchestrator_function_name),
    ("orchestrator function log group", "aws_cloudwatch_log_group.name",
     lambda n: naming.lambda_log_group(naming.orchestrator_function_name(n))),
    ("image build project", "aws_codebuild_project.name", naming.image_build_project),
    ("image build log group", "aws_cloudwatch_log_group.name", naming.image_build_log_group),
    ("docker hub cache prefix", "aws_ecr_pull_through_cache_rule.ecr_repository_prefix",
     naming.docker_hub_cache_prefix),
    ("orchestrator security group", "aws_security_group.name_prefix",
     lambda n: naming.security_group_name_prefix(n, naming.ORCHESTRATOR_ROLE)),
    ("karpenter node instance profile", "aws_iam_instance_profile.name_prefix",
     lambda n: naming.instance_profile_name_prefix(n, naming.KARPENTER_NODE_ROLE)),
    ("karpenter interruption queue", "aws_sqs_queue.name", naming.karpenter_interruption_queue),
    *[(f"karpenter rule {e}", "aws_cloudwatch_event_rule.name", lambda n, e=e: naming.karpenter_event_rule(n, e))
      for e in ("scheduled-change", "spot-interruption", "rebalance", "state-change", "capacity-reservation")],
]
# What each kind of name may contain (AWS API patterns).
CHARSETS = {
    "aws_iam_role.name_prefix": re.compile(r"^[\w+=,.@-]+$"),
    "aws_s3_bucket.bucket_prefix": re.compile(r"^[a-z0-9][a-z0-9.-]*$"),
    "aws_eks_cluster.name": re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]*$"),
    "aws_cloudwatch_log_group.name": re.compile(r"^[.\-_/#A-Za-z0-9]+$"),
    "aws_sfn_state_machine.name": re.compile(r"^[0-9A-Za-z_-]+$"),
    "aws_kms_alias.name": re.compile(r"^alias/[0-9A-Za-z_/-]+$"),
    "aws_security_group.name_prefix": re.compile(r"^(?!sg-).+$"),
    "aws_launch_template.name_prefix": re.compile(r"^[0-9A-Za-z()./_-]+$"),
    "aws_eks_node_group.node_group_name_prefix": re.compile(r"^[0-9A-Za-z_-]+$"),
    "aws_ecr_repository.name": ECR_NAME_RE,
    "aws_lambda_function.function_name": re.compile(r"^[a-zA-Z0-9-_]+$"),
    "aws_codebuild_project.name": re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_]{1,149}$"),
    "aws_ecr_pull_through_cache_rule.ecr_repository_prefix": re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$"),
    "aws_iam_instance_profile.name_prefix": re.compile(r"^[\w+=,.@-]+$"),
    "aws_sqs_queue.name": re.compile(r"^[A-Za-z0-9_-]{1,80}$"),
    "aws_cloudwatch_event_rule.name": re.compile(r"^[.\-_A-Za-z0-9]{1,64}$"),
}


def test_the_schema_accepts_the_longest_name_and_no_longer():
    assert parse_config({"name": LONGEST}).name == LONGEST and len(LONGEST) == naming.MAX_NAME_LENGTH
    with pytest.raises(ConfigError, match=r"^config: name: "):
        parse_config({"name": LONGEST + "c"})


def test_the_table_covers_every_name_function():
    functions = {n for n, f in inspect.getmembers(naming, inspect.isfunction)
                 if not n.startswith("_") and f.__module__ == naming.__name__}
    used = {"iam_role_name_prefix", "node_role_purpose", "bucket_prefix", "data_bucket_prefix",
            "access_logs_bucket_prefix", "cluster_name", "cluster_log_group", "fsx_log_group",
            "vpc_flow_logs_log_group", "state_machine_name", "state_machine_log_group", "kms_alias",
            "security_group_name_prefix", "launch_template_name_prefix", "node_group_name_prefix",
            "ecr_repository_name", "orchestrator_function_name", "lambda_log_group",
            "image_build_project", "image_build_log_group", "docker_hub_cache_prefix", "instance_profile_name_prefix",
            "karpenter_interruption_queue", "karpenter_event_rule"}
    assert functions == used, f"add new naming functions to DERIVED: {sorted(functions - used)}"


@pytest.mark.parametrize("name", [SHORTEST, "ray-eks", LONGEST], ids=["shortest", "default", "longest"])
@pytest.mark.parametrize("what,limit,derive", DERIVED, ids=[d[0] for d in DERIVED])
def test_every_name_fits_its_limit(name, what, limit, derive):
    value = derive(name)
    assert len(value) <= naming.LIMITS[limit], f"{what}: {value!r} is {len(value)} > {naming.LIMITS[limit]}"
    assert CHARSETS[limit].match(value), f"{what}: {value!r} breaks the {limit} pattern"


def test_overflowing_prefixes_shorten_the_name_not_the_purpose():
    # Issue 12: "<name>-access-logs-" was 45 characters at the longest name; bucket_prefix takes 37.
    value = naming.access_logs_bucket_prefix(LONGEST)
    assert len(value) == 37 and value.endswith("-access-logs-") and LONGEST.startswith(value[:-len("-access-logs-")])
    role = naming.iam_role_name_prefix(LONGEST, naming.node_role_purpose(LONGEST_GROUP))
    assert role.endswith(f"-node-{LONGEST_GROUP}-") and len(role) <= 38
    assert "--" not in naming.bucket_prefix("aaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbb", "access-logs")  # no dangling hyphen


def test_short_names_are_kept_whole():
    assert naming.data_bucket_prefix("ray-eks") == "ray-eks-data-"
    assert naming.access_logs_bucket_prefix("ray-eks") == "ray-eks-access-logs-"
    assert naming.iam_role_name_prefix("ray-eks", naming.CLUSTER_ROLE) == "ray-eks-cluster-"
    assert naming.ecr_repository_name("ray-eks") == "ray-eks/ray-custom"


def test_regional_names_of_two_deployments_differ():
    """Regional names are never shortened: two names, even alike in all but the last character, stay apart."""
    a, b = LONGEST, LONGEST[:-1] + "c"
    for what, limit, derive in DERIVED:
        if not limit.endswith("_prefix"):
            assert derive(a) != derive(b), what


def test_tokens_and_other_non_names_are_refused():
    # Slicing a token's text would corrupt it; only plain config names go in.
    for bad in ("${TfToken[TOKEN.42]}", "Ray", "a" * 33, ""):
        with pytest.raises(ValueError):
            naming.iam_role_name_prefix(bad, "cluster")
        with pytest.raises(ValueError):
            naming.ecr_repository_name(bad)


def test_reserved_bucket_prefixes_are_config_errors():
    for prefix in naming.S3_RESERVED_PREFIXES:
        with pytest.raises(Exception, match="S3 reserves"):
            parse_config({"name": prefix + "abc"})
