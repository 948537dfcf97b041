"""An IAM role for one Kubernetes service account (IRSA), with one inline least-privilege policy."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from constructs import Construct

from .iam import irsa_assume_role_policy


@dataclass(frozen=True)
class IrsaRoleProps:
    role_name_prefix: str  # IAM names are global: a generated suffix keeps deployments and regions apart
    oidc_provider_arn: str
    oidc_issuer_host: str  # issuer URL without https://
    namespace: str
    service_account: str
    policy_name: str
    policy_json: str
    # Further service accounts of the same namespace that share the role (the Ray head's and workers').
    more_service_accounts: tuple[str, ...] = ()


class IrsaRole(Construct):
    """Addresses: ``aws_iam_role.<id>`` and ``aws_iam_role_policy.<id>``."""

    role_arn: str

    def __init__(self, scope: Construct, id: str, props: IrsaRoleProps) -> None:
        super().__init__(scope, id)
        role = IamRole(self, id, name_prefix=props.role_name_prefix, assume_role_policy=irsa_assume_role_policy(
            props.oidc_provider_arn, props.oidc_issuer_host, props.namespace,
            [props.service_account, *props.more_service_accounts]))
        IamRolePolicy(Construct(self, "policy"), id, role=role.id, name=props.policy_name, policy=props.policy_json)
        self.role_arn = role.arn
