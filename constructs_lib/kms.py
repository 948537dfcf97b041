"""Customer-managed KMS keys: one for Kubernetes secrets (envelope encryption), one for data at rest
(CloudWatch logs, ECR, FSx). Separate keys keep the blast radius of a key policy change small."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from .iam import policy_document

# AWS's maximum: the longest window to notice a scheduled key deletion (and cancel it).
MAX_DELETION_WINDOW_DAYS = 30


@dataclass(frozen=True)
class KmsKeysProps:
    name: str
    eks_alias: str
    data_alias: str
    region: str
    account_id: str
    partition: str
    # The log groups CloudWatch Logs may encrypt with the data key (names): the deployment's own, no other.
    log_group_names: tuple[str, ...] = ()
    deletion_window_days: int = MAX_DELETION_WINDOW_DAYS


class KmsKeys(Construct):
    eks_key_arn: str
    data_key_arn: str

    def __init__(self, scope: Construct, id: str, props: KmsKeysProps) -> None:
        super().__init__(scope, id)
        root = f"arn:{props.partition}:iam::{props.account_id}:root"
        account_admin = {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": root},
                         "Action": "kms:*", "Resource": "*"}
        eks = KmsKey(self, "eks", description=f"{props.name}: EKS secrets envelope encryption",
                     enable_key_rotation=True, deletion_window_in_days=props.deletion_window_days,
                     policy=policy_document([account_admin]))
        KmsAlias(self, "eks_alias", name=props.eks_alias, target_key_id=eks.key_id)
        logs_service = f"logs.{props.region}.amazonaws.com"
        data = KmsKey(self, "data", description=f"{props.name}: logs, ECR and FSx at rest",
                      enable_key_rotation=True, deletion_window_in_days=props.deletion_window_days,
                      policy=policy_document([account_admin, {
                          "Sid": "CloudWatchLogsEncrypt", "Effect": "Allow", "Principal": {"Service": logs_service},
                          "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                                     "kms:Describe*"],
                          "Resource": "*",
                          # These log groups only: another log group of the account cannot use the key.
                          "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": [
                              f"arn:{props.partition}:logs:{props.region}:{props.account_id}:log-group:{n}"
                              for n in props.log_group_names]}},
                      }]))
        KmsAlias(self, "data_alias", name=props.data_alias, target_key_id=data.key_id)
        self.eks_key_arn = eks.arn
        self.data_key_arn = data.arn
