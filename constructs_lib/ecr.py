"""ECR repository for the custom Ray image: immutable tags, scan on push, KMS, lifecycle policy."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.ecr_lifecycle_policy import EcrLifecyclePolicy
from cdktf_cdktf_provider_aws.ecr_repository import (
    EcrRepository,
    EcrRepositoryEncryptionConfiguration,
    EcrRepositoryImageScanningConfiguration,
)
from constructs import Construct


@dataclass(frozen=True)
class EcrRepositoryProps:
    name: str
    kms_key_arn: str
    keep_last_images: int
    prevent_destroy: bool


class RayImageRepository(Construct):
    repository_url: str
    repository_arn: str
    repository_name: str

    def __init__(self, scope: Construct, id: str, props: EcrRepositoryProps) -> None:
        super().__init__(scope, id)
        repo = EcrRepository(
            self, "ray",
            name=props.name,
            # A tag always means the same image: RayClusters pinned to a tag cannot drift.
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=EcrRepositoryImageScanningConfiguration(scan_on_push=True),
            encryption_configuration=[
                EcrRepositoryEncryptionConfiguration(encryption_type="KMS", kms_key=props.kms_key_arn)],
            force_delete=not props.prevent_destroy,
            lifecycle=TerraformResourceLifecycle(prevent_destroy=props.prevent_destroy),
        )
        EcrLifecyclePolicy(self, "ray_lifecycle", repository=repo.name, policy=json.dumps({"rules": [
            {"rulePriority": 1, "description": "Drop untagged layers after a day",
             "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                           "countNumber": 1},
             "action": {"type": "expire"}},
            {"rulePriority": 2, "description": f"Keep the last {props.keep_last_images} images",
             "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                           "countNumber": props.keep_last_images},
             "action": {"type": "expire"}},
        ]}))
        self.repository_url = repo.repository_url
        self.repository_arn = repo.arn
        self.repository_name = repo.name
