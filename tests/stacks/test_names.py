"""AWS names in the synthesized stacks: each fits its provider/API limit (conventions/naming.py LIMITS) at the
longest deployment and node group names the schema accepts, and two deployments never share one -- the same
name in two regions, two names in one region.

IAM roles and S3 buckets are global (account, partition): they carry no literal name at all, only a prefix the
provider completes with a unique suffix. Every other name is regional: two deployments in one region must not
share one. (The same name in two regions shares regional names such as /aws/eks/<name>/cluster -- EKS fixes
that one -- which is no collision: each region has its own.)
"""

from __future__ import annotations

import pytest

from conventions.naming import LIMITS
from tests.helpers import EDGE_NAME, attrs, stack_items

# Top-level attributes that name an AWS resource.
NAME_ATTRS = ("name", "name_prefix", "bucket", "bucket_prefix", "node_group_name", "node_group_name_prefix",
              "function_name", "ecr_repository_prefix")
GLOBAL_TYPES = ("aws_iam_role", "aws_iam_policy", "aws_iam_instance_profile", "aws_s3_bucket")
# Names unique only within a parent that is itself unique per deployment (a role's inline policy, a cluster's
# node group, a VPC's security group).
PARENT_SCOPED = ("aws_iam_role_policy", "aws_eks_node_group", "aws_security_group")


def aws_names(synth: dict) -> list[tuple[str, str, str, str]]:
    """(stack, resource address, attribute, value) of every AWS name a synth spells out (references to other
    resources' names, ``${...}``, are those resources' names)."""
    out = []
    for stack_name, stack in stack_items(synth):
        for rtype, byname in stack.get("resource", {}).items():
            if not rtype.startswith("aws_"):
                continue  # Kubernetes objects and Helm releases: names inside one cluster
            for rname, body in byname.items():
                for attr in NAME_ATTRS:
                    value = attrs(body).get(attr)
                    if isinstance(value, str) and "${" not in value:
                        out.append((stack_name, f"{rtype}.{rname}", attr, value))
    return out


def test_the_edge_synth_is_at_the_longest_names(edge_synth):
    assert len(EDGE_NAME) == 32
    groups = [n for _, stack in stack_items(edge_synth)
              for n in stack.get("resource", {}).get("aws_eks_node_group", {})]
    assert max(len(g) for g in groups) == 20


@pytest.mark.parametrize("synth", ["edge_synth", "default_synth", "dev_synth"])
def test_every_name_fits_its_limit(synth, request):
    names = aws_names(request.getfixturevalue(synth))
    assert names
    unknown = sorted({f"{addr.split('.')[0]}.{attr}" for _, addr, attr, _ in names} - set(LIMITS))
    assert not unknown, f"names with no limit in conventions/naming.py LIMITS: {unknown}"
    too_long = [f"{stack}: {addr}.{attr} = {value!r} ({len(value)} > {LIMITS[addr.split('.')[0] + '.' + attr]})"
                for stack, addr, attr, value in names if len(value) > LIMITS[f"{addr.split('.')[0]}.{attr}"]]
    assert not too_long, "\n".join(too_long)


@pytest.mark.parametrize("synth", ["edge_synth", "default_synth"])
def test_global_resources_have_no_literal_name(synth, request):
    """A fixed IAM role or bucket name collides with the same deployment in another region."""
    literal = [f"{stack}: {addr}.{attr}" for stack, addr, attr, _ in aws_names(request.getfixturevalue(synth))
               if addr.split(".")[0] in GLOBAL_TYPES and not attr.endswith("_prefix")]
    assert not literal, literal


def _literal_names(synth: dict, scope) -> dict[tuple[str, str], str]:
    """(scope, type) + value -> where, for the literal names of a synth; scope is 'global' or the region."""
    out = {}
    for stack, addr, attr, value in aws_names(synth):
        rtype = addr.split(".")[0]
        if attr.endswith("_prefix") or rtype in PARENT_SCOPED:
            continue
        out[("global" if rtype in GLOBAL_TYPES else scope, rtype, value)] = f"{stack}: {addr}.{attr}"
    return out


def test_two_deployments_share_no_name(default_synth, other_region_synth, edge_synth):
    """ray-eks in us-west-2 and in eu-west-1 (same name, two regions), and ray-eks next to another deployment in
    us-west-2 (two names, one region): no name both would create in one namespace."""
    a = _literal_names(default_synth, "us-west-2")
    for other, region in ((other_region_synth, "eu-west-1"), (edge_synth, "us-west-2")):
        b = _literal_names(other, region)
        shared = sorted(f"{k}: {a[k]} / {b[k]}" for k in set(a) & set(b))
        assert not shared, "\n".join(shared)
    # The check sees the names it must: a repository, log groups, aliases, a state machine, the cluster.
    kinds = {rtype for (_, rtype, _) in a}
    assert {"aws_ecr_repository", "aws_cloudwatch_log_group", "aws_kms_alias", "aws_sfn_state_machine",
            "aws_eks_cluster"} <= kinds, kinds
