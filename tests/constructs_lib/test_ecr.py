"""ECR repository for the custom Ray image, alone from its props (``construct_synth``) and through the infra stack's
JSON."""

from __future__ import annotations

import json

import pytest
from cdktf_cdktf_provider_aws.ecr_repository import EcrRepository

from constructs_lib.ecr import EcrRepositoryProps, RayImageRepository
from conventions import naming
from tests.helpers import attrs, outputs, ref, resources


def _repo(stack: dict) -> tuple[str, dict]:
    repos = resources(stack, "aws_ecr_repository")
    assert len(repos) == 1
    ((name, body),) = repos.items()
    return name, attrs(body)


def _block(value):
    return value[0] if isinstance(value, list) else value


def test_repository_name_from_config(shape):
    # None (every example): derived from the deployment name, so no two deployments share the repository.
    expected = shape.cfg.ecr.repository_name or naming.ecr_repository_name(shape.cfg.name)
    assert _repo(shape.infra)[1]["name"] == expected


def test_repository_name_derives_from_the_deployment_name(infra, dev_infra):
    assert _repo(infra)[1]["name"] == "ray-eks/ray-custom"
    assert _repo(dev_infra)[1]["name"] == "ray-dev/ray-custom"


def test_scan_on_push(shape):
    assert _block(_repo(shape.infra)[1]["image_scanning_configuration"])["scan_on_push"] is True


def test_kms_encryption_with_data_key(shape):
    enc = _block(_repo(shape.infra)[1]["encryption_configuration"])
    assert enc["encryption_type"] == "KMS"
    assert enc["kms_key"] == ref("aws_kms_key", "data", "arn")


def test_lifecycle_policy_is_valid_json_with_rules(shape):
    name, repo = _repo(shape.infra)
    policies = [attrs(p) for p in resources(shape.infra, "aws_ecr_lifecycle_policy").values()]
    (policy,) = [p for p in policies if p["repository"] == ref("aws_ecr_repository", name, "name")]
    rules = json.loads(policy["policy"])["rules"]
    assert rules
    priorities = [r["rulePriority"] for r in rules]
    assert len(set(priorities)) == len(priorities), "ECR rejects duplicate rule priorities"
    for r in rules:
        assert r["action"] == {"type": "expire"}
        sel = r["selection"]
        assert sel["tagStatus"] in ("tagged", "untagged", "any")
        assert sel["countType"] in ("imageCountMoreThan", "sinceImagePushed")
        assert isinstance(sel["countNumber"], int) and sel["countNumber"] >= 1
        if sel["countType"] == "sinceImagePushed":
            assert sel["countUnit"] == "days"
    # ECR requires a tagStatus "any" rule to have the highest rulePriority number.
    anys = [r["rulePriority"] for r in rules if r["selection"]["tagStatus"] == "any"]
    assert anys == [max(priorities)], "one tagStatus any rule (keep the last N images), and it comes last"
    keep = [r for r in rules if r["selection"]["countType"] == "imageCountMoreThan"]
    assert [r["selection"]["countNumber"] for r in keep] == [shape.cfg.ecr.keep_last_images]


def test_ecr_outputs(shape):
    name, _ = _repo(shape.infra)
    out = outputs(shape.infra)
    assert out["ecr_repository_url"]["value"] == ref("aws_ecr_repository", name, "repository_url")
    assert out["ecr_repository_arn"]["value"] == ref("aws_ecr_repository", name, "arn")


# ---- alone: the construct in an empty stack, from its props ------------------------------------------------------
KEY = "arn:aws:kms:us-west-2:111122223333:key/data"


@pytest.mark.parametrize("protect", [True, False])
def test_alone_immutable_scanned_encrypted_and_protected_as_the_props_say(construct_synth, protect):
    ecr = construct_synth(lambda stack: RayImageRepository(stack, "ecr", EcrRepositoryProps(
        name="unit/ray", kms_key_arn=KEY, keep_last_images=12, prevent_destroy=protect)),
        outputs=("repository_url", "repository_arn", "repository_name"))
    assert ecr.has_resource(EcrRepository, {
        "name": "unit/ray", "image_tag_mutability": "IMMUTABLE", "image_scanning_configuration": {"scan_on_push": True},
        "encryption_configuration": [{"encryption_type": "KMS", "kms_key": KEY}],
        "force_delete": not protect, "lifecycle": {"prevent_destroy": protect}})
    assert ecr.output("repository_url") == ref("aws_ecr_repository", "ray", "repository_url")
    assert ecr.output("repository_name") == ref("aws_ecr_repository", "ray", "name")
    policy = ecr.one("aws_ecr_lifecycle_policy", "ray_lifecycle")
    assert policy["repository"] == ref("aws_ecr_repository", "ray", "name")
    assert [(r["rulePriority"], r["selection"]) for r in json.loads(policy["policy"])["rules"]] == [
        (1, {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}),
        (2, {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 12}),
    ]
