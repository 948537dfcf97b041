"""ECR repository for the custom Ray image, through the infra stack's JSON."""

from __future__ import annotations

import json

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
    assert all(p == max(priorities) for p in anys)
    keep = [r for r in rules if r["selection"]["countType"] == "imageCountMoreThan"]
    assert [r["selection"]["countNumber"] for r in keep] == [shape.cfg.ecr.keep_last_images]


def test_ecr_outputs(shape):
    name, _ = _repo(shape.infra)
    out = outputs(shape.infra)
    assert out["ecr_repository_url"]["value"] == ref("aws_ecr_repository", name, "repository_url")
    assert out["ecr_repository_arn"]["value"] == ref("aws_ecr_repository", name, "arn")
