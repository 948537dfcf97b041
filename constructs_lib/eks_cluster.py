"""EKS control plane: access entries (API mode, no aws-auth), KMS envelope encryption of secrets,
control-plane logging, private endpoint + CIDR-restricted public endpoint, and the IAM OIDC provider
for IRSA."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import Fn
from constructs import Construct

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.eks_access_entry import EksAccessEntry
from cdktf_cdktf_provider_aws.eks_access_policy_association import (
    EksAccessPolicyAssociation,
    EksAccessPolicyAssociationAccessScope,
)
from cdktf_cdktf_provider_aws.eks_cluster import (
    EksCluster,
    EksClusterAccessConfig,
    EksClusterEncryptionConfig,
    EksClusterEncryptionConfigProvider,
    EksClusterVpcConfig,
)
from cdktf_cdktf_provider_aws.iam_openid_connect_provider import IamOpenidConnectProvider
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment

from .checkov import skip
from .iam import service_assume_role_policy


@dataclass(frozen=True)
class EksClusterProps:
    name: str
    kubernetes_version: str
    subnet_ids: list[str]
    secrets_kms_key_arn: str
    logs_kms_key_arn: str
    partition: str
    public_access_cidrs: list[str]
    admin_principal_arns: list[str]
    creator_is_admin: bool
    log_types: list[str]
    log_retention_days: int


class RayEksCluster(Construct):
    cluster: EksCluster
    name: str
    endpoint: str
    certificate_authority_data: str
    oidc_issuer_url: str
    oidc_issuer_host: str
    oidc_provider_arn: str
    cluster_security_group_id: str
    role_arn: str

    def __init__(self, scope: Construct, id: str, props: EksClusterProps) -> None:
        super().__init__(scope, id)
        p = props.partition
        role = IamRole(self, "cluster", name=f"{props.name}-cluster",
                       assume_role_policy=service_assume_role_policy("eks.amazonaws.com"))
        attachments = [
            IamRolePolicyAttachment(self, "cluster_policy", role=role.name,
                                    policy_arn=f"arn:{p}:iam::aws:policy/AmazonEKSClusterPolicy"),
        ]
        # Created before the cluster so retention and encryption apply from the first log line.
        logs = CloudwatchLogGroup(self, "cluster_logs", name=f"/aws/eks/{props.name}/cluster",
                                  retention_in_days=props.log_retention_days, kms_key_id=props.logs_kms_key_arn)
        public = bool(props.public_access_cidrs)
        cluster = EksCluster(
            self, "ray",
            name=props.name,
            version=props.kubernetes_version,
            role_arn=role.arn,
            vpc_config=EksClusterVpcConfig(
                subnet_ids=props.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=public,
                public_access_cidrs=props.public_access_cidrs if public else None,
            ),
            access_config=EksClusterAccessConfig(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=props.creator_is_admin,
            ),
            encryption_config=EksClusterEncryptionConfig(
                resources=["secrets"],
                provider=EksClusterEncryptionConfigProvider(key_arn=props.secrets_kms_key_arn),
            ),
            enabled_cluster_log_types=props.log_types,
            depends_on=[*attachments, logs],
        )
        if public:
            # CKV_AWS_38 (no 0.0.0.0/0) still applies and fails an open endpoint; the config warns loudly too.
            skip(cluster, "CKV_AWS_39",
                 "The public endpoint is on only because cluster.public_access_cidrs names the CIDRs allowed to "
                 "reach it (" + ", ".join(props.public_access_cidrs) + "); leave the list empty for private only")
        for i, principal in enumerate(props.admin_principal_arns):
            entry = EksAccessEntry(self, f"admin_{i}", cluster_name=cluster.name, principal_arn=principal, type="STANDARD")
            EksAccessPolicyAssociation(
                self, f"admin_{i}_cluster_admin", cluster_name=cluster.name, principal_arn=entry.principal_arn,
                policy_arn=f"arn:{p}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                access_scope=EksAccessPolicyAssociationAccessScope(type="cluster"),
            )

        issuer = cluster.identity.get(0).oidc.get(0).issuer
        # Since 2023 IAM trusts the EKS OIDC issuer through its CA; no thumbprint (and no tls provider) needed.
        oidc = IamOpenidConnectProvider(self, "eks", url=issuer, client_id_list=["sts.amazonaws.com"])

        self.cluster = cluster
        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.certificate_authority_data = cluster.certificate_authority.get(0).data
        self.oidc_issuer_url = issuer
        self.oidc_issuer_host = Fn.replace(issuer, "https://", "")
        self.oidc_provider_arn = oidc.arn
        self.cluster_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.role_arn = role.arn
