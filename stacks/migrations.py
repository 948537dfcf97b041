"""Every address rename, in one place, grouped by release (like terraform-aws-eks's migrations.tf).

Renaming a resource's construct id changes its address; without a ``moved`` block Terraform would
destroy and recreate it (an FSx file system, a node group...). When you rename one, add
``(old_address, new_address)`` under the release that renames it and update
tests/stacks/test_addresses.py in the same commit.

A change of an attribute that forces replacement keeps the address and needs no entry here; before a first
release such replacements are listed in CHANGELOG.md instead. Unreleased: the EKS cluster
(``bootstrap_cluster_creator_admin_permissions`` and ``bootstrap_self_managed_addons`` now false), the IAM roles
(``name`` -> ``name_prefix``; node groups follow their roles) and the ECR repository (named after the deployment)
are replaced on the next apply of an existing deployment.
"""

from __future__ import annotations

from cdktf import TerraformStack

MOVED: dict[str, dict[str, list[tuple[str, str]]]] = {
    # stack name -> release -> [(from, to)]
    "infra": {},
    "ray": {},
    "ray-cluster": {},
}


def add_moved_blocks(stack: TerraformStack, stack_name: str) -> None:
    moves = [{"from": old, "to": new} for release in MOVED.get(stack_name, {}).values() for old, new in release]
    if moves:
        stack.add_override("moved", moves)
